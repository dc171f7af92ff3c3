#!/usr/bin/python3
"""A second, independent GGUF v2/v3 reader (plain `struct`, written from the GGUF spec) used by
tests/reference/test_gguf_fixtures.cpp as a cross-check of src/formats/gguf.cpp. It prints one
JSON document: version, every KV (key, type, scalar value or string bytes as hex, array element
type and count), every tensor info (name, ne, ggml type, offset) and where the data section starts.
It trusts the file: defending against hostile input is the C++ reader's job, not this script's.
To report one more fact, add a field in `summary`.

usage: gguf_dump.py FILE.gguf
"""
import json
import struct
import sys

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated at %d" % self.pos)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        return self.take(self.unpack("<Q"))

    def skip_array_body(self):
        elem, count = self.unpack("<I"), self.unpack("<Q")
        if elem in SCALARS:
            self.take(struct.calcsize(SCALARS[elem]) * count)
        elif elem == STRING:
            for _ in range(count):
                self.string()
        elif elem == ARRAY:
            for _ in range(count):
                self.skip_array_body()
        else:
            raise ValueError("bad array element type %d" % elem)
        return elem, count

    def value(self, vtype):
        if vtype in SCALARS:
            v = self.unpack(SCALARS[vtype])
            return {"value": repr(v) if vtype in (6, 12) else v}
        if vtype == STRING:
            return {"hex": self.string().hex()}
        if vtype == ARRAY:
            elem, count = self.skip_array_body()
            return {"elem": elem, "count": count}
        raise ValueError("bad value type %d" % vtype)


def summary(path):
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    if r.take(4) != b"GGUF":
        raise ValueError("not GGUF")
    version = r.unpack("<I")
    n_tensors = r.unpack("<Q")
    n_kv = r.unpack("<Q")
    kvs = []
    alignment = 32
    for _ in range(n_kv):
        key = r.string().decode("utf-8")
        vtype = r.unpack("<I")
        kv = {"key": key, "type": vtype, **r.value(vtype)}
        if key == "general.alignment":
            alignment = kv["value"]
        kvs.append(kv)
    tensors = []
    for _ in range(n_tensors):
        name = r.string().decode("utf-8")
        n_dims = r.unpack("<I")
        ne = [r.unpack("<Q") for _ in range(n_dims)]
        ggml_type = r.unpack("<I")
        offset = r.unpack("<Q")
        tensors.append({"name": name, "ne": ne, "ggml_type": ggml_type, "offset": offset})
    data_start = (r.pos + alignment - 1) // alignment * alignment
    return {"version": version, "data_start": data_start, "file_size": len(data), "kv": kvs, "tensors": tensors}


if __name__ == "__main__":
    json.dump(summary(sys.argv[1]), sys.stdout)
    sys.stdout.write("\n")
