"""Re-statement in numpy of GPTQModel/AutoGPTQ and AutoAWQ packing, from their published layouts,
for tests/reference/test_packing.cpp. Written as those projects describe the loops (per packed
row / word), independently of our bit-stream formulation in src/formats/gptq_awq.cpp.

usage: packing_reference.py DIR out in ngroups bits format(gptq|gptq_v2|awq)
reads DIR/codes.i32 (out, in), zeros.i32 (ngroups, out), scales.f32 (ngroups, out);
writes DIR/np_qweight.i32, np_qzeros.i32, np_scales.f16.
"""
import sys
import numpy as np


def pack_gptq_rows(intweight, bits):
    """intweight (in, out) uint32 -> (in*bits/32, out): AutoGPTQ's row loop."""
    rows_in, out = intweight.shape
    q = np.zeros((rows_in * bits // 32, out), dtype=np.uint32)
    i = 0
    row = 0
    while row < q.shape[0]:
        if bits in (2, 4, 8):
            for j in range(i, i + 32 // bits):
                q[row] |= intweight[j] << np.uint32(bits * (j - i))
            i += 32 // bits
            row += 1
        else:  # 3 bits: 10 values, one split over two words, 10 values, one split, 10 values
            for j in range(i, i + 10):
                q[row] |= intweight[j] << np.uint32(3 * (j - i))
            i += 10
            q[row] |= intweight[i] << np.uint32(30)
            row += 1
            q[row] |= (intweight[i] >> np.uint32(2)) & np.uint32(1)
            i += 1
            for j in range(i, i + 10):
                q[row] |= intweight[j] << np.uint32(3 * (j - i) + 1)
            i += 10
            q[row] |= intweight[i] << np.uint32(31)
            row += 1
            q[row] |= (intweight[i] >> np.uint32(1)) & np.uint32(3)
            i += 1
            for j in range(i, i + 10):
                q[row] |= intweight[j] << np.uint32(3 * (j - i) + 2)
            i += 10
            row += 1
    return q


def main():
    d = sys.argv[1]
    out, inn, ng, bits = (int(v) for v in sys.argv[2:6])
    fmt = sys.argv[6]
    codes = np.fromfile(f"{d}/codes.i32", dtype=np.int32).reshape(out, inn).astype(np.uint32)
    zeros = np.fromfile(f"{d}/zeros.i32", dtype=np.int32).reshape(ng, out)
    scales = np.fromfile(f"{d}/scales.f32", dtype=np.float32).reshape(ng, out)
    mask = (1 << bits) - 1
    if fmt in ("gptq", "gptq_v2"):
        qweight = pack_gptq_rows(np.ascontiguousarray(codes.T), bits)
        z = zeros - 1 if fmt == "gptq" else zeros
        z = (z & mask).astype(np.uint32)
        # qzeros packs along the output dimension: transpose, pack rows, transpose back.
        qzeros = np.ascontiguousarray(pack_gptq_rows(np.ascontiguousarray(z.T), bits).T)
    else:
        order_map = [0, 2, 4, 6, 1, 3, 5, 7]
        pack_num = 32 // bits
        intweight = np.ascontiguousarray(codes.T)  # (in, out)
        qweight = np.zeros((inn, out // pack_num), dtype=np.uint32)
        for col in range(out // pack_num):
            for i in range(pack_num):
                qweight[:, col] |= intweight[:, col * pack_num + order_map[i]] << np.uint32(i * bits)
        zz = zeros.astype(np.uint32)
        qzeros = np.zeros((ng, out // pack_num), dtype=np.uint32)
        for col in range(out // pack_num):
            for i in range(pack_num):
                qzeros[:, col] |= zz[:, col * pack_num + order_map[i]] << np.uint32(i * bits)
    qweight.astype(np.uint32).tofile(f"{d}/np_qweight.i32")
    qzeros.astype(np.uint32).tofile(f"{d}/np_qzeros.i32")
    scales.astype(np.float16).tofile(f"{d}/np_scales.f16")
    print("ok", qweight.shape, qzeros.shape)


if __name__ == "__main__":
    main()
