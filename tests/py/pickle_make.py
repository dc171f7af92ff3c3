"""Writes benign and malicious pickle / torch.save files for the pickle scanner tests, and prints a
JSON reference made with Python's own opcode walker (pickletools.genops): per file the opcode count
and the GLOBAL/INST imports of its pickle stream. Nothing written here is ever loaded: malicious
objects only define __reduce__, which pickle calls while *writing*, never running the payload.
Usage: /usr/bin/python3 pickle_make.py OUT_DIR
"""
import collections
import io
import json
import os
import pickle
import pickletools
import sys
import zipfile

import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
files = {}


def write(name, data, kind):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    files[name] = {"kind": kind}


def torch_bytes(obj, **kw):
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


torch.manual_seed(0)
lin = torch.nn.Linear(4, 3)
write("torch_tensor.pt", torch_bytes(torch.randn(3, 4)), "benign")
write("torch_state_dict.pt", torch_bytes(lin.state_dict()), "benign")
write("torch_params.pt", torch_bytes({"w": torch.nn.Parameter(torch.ones(2)), "h": torch.ones(2, dtype=torch.float16)}), "benign")
write("torch_legacy.pt", torch_bytes(lin.state_dict(), _use_new_zipfile_serialization=False), "benign")
write("torch_module.pt", torch_bytes(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())), "module")

plain = {"a": [1, 2.5, "x", b"bytes", None, True], "b": (1, 2), "c": collections.OrderedDict(k=1), "d": {3, 4},
         "e": bytearray(b"ba"), "big": 2 ** 80}
for p in range(6):
    write("proto%d.pkl" % p, pickle.dumps(plain, protocol=p), "benign")


class SystemCall:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class EvalCall:
    def __reduce__(self):
        import builtins
        return (builtins.eval, ("1+1",))


for p in (0, 2, 4, 5):
    write("evil_system_p%d.pkl" % p, pickle.dumps(SystemCall(), protocol=p), "critical")
    write("evil_eval_p%d.pkl" % p, pickle.dumps(EvalCall(), protocol=p), "critical")
# INST (protocol 0): module/name as text lines, arguments from MARK.
write("evil_inst.pkl", b"(S'echo pwned'\nios\nsystem\n.", "critical")
# Memo trick: the strings are stored with MEMOIZE, popped, fetched back with BINGET, then
# STACK_GLOBAL; nothing that names os.system sits next to the import.
memo_body = (b"\x8c\x02os\x94" + b"0" + b"\x8c\x06system\x94" + b"0" + b"\x8c\x09unrelated\x94" + b"0" +
             b"h\x00h\x01\x93" + b"\x8c\x02id\x85R.")
evil_memo = b"\x80\x04\x95" + len(memo_body).to_bytes(8, "little") + memo_body
write("evil_memo.pkl", evil_memo, "critical")
# Text PUT/GET variant (protocol 0) with builtins under its Python 2 name.
write("evil_memo_p0.pkl", b"V__builtin__\np0\n0Veval\np1\n0g0\ng1\n\x93(V1+1\ntR.", "critical")


def rezip(src, replace, compress=zipfile.ZIP_STORED):
    zin = zipfile.ZipFile(io.BytesIO(src))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = replace
                zout.writestr(info.filename, data, compress_type=compress)
            else:
                zout.writestr(info.filename, data)
    return buf.getvalue()


sd = torch_bytes(lin.state_dict())
evil_zip = rezip(sd, pickle.dumps(SystemCall(), protocol=2))
write("evil_zip.pt", evil_zip, "critical")
nested = io.BytesIO()
with zipfile.ZipFile(nested, "w", compression=zipfile.ZIP_STORED) as z:
    z.writestr("inner/model.pt", evil_zip)
write("evil_nested_zip.zip", nested.getvalue(), "critical")
write("deflated.pt", rezip(sd, pickle.dumps(lin.state_dict(), protocol=2), zipfile.ZIP_DEFLATED), "deflated")

# Reference: Python's own opcode walk of each pickle stream.
for name, info in files.items():
    data = open(os.path.join(out, name), "rb").read()
    streams = []
    if data[:4] == b"PK\x03\x04":
        try:
            z = zipfile.ZipFile(io.BytesIO(data))
            for n in z.namelist():
                if n.endswith("data.pkl") and z.getinfo(n).compress_type == zipfile.ZIP_STORED:
                    streams.append(z.read(n))
        except Exception:
            pass
    else:
        streams.append(data)
    opcodes, imports = 0, []
    for s in streams:
        f = io.BytesIO(s)
        while True:
            pos = f.tell()
            if pos >= len(s) or (opcodes and s[pos] != 0x80):
                break
            try:
                for op, arg, at in pickletools.genops(f):
                    opcodes += 1
                    if op.name in ("GLOBAL", "INST"):
                        imports.append(arg.split(" ", 1))
            except Exception:
                break
    info["opcodes"] = opcodes
    info["imports"] = imports
print(json.dumps(files))
