"""Compiled (numba) loops of the VMM kernel: the fast path of :mod:`chipsim.kernel`.

Imported lazily by :mod:`chipsim.kernel` on the first run (the first call
of each loop compiles it, or loads it from numba's cache). Every function
here computes exactly what the plain numpy reference of :mod:`chipsim.kernel`
and :mod:`chipsim.noise` computes from the same random words, element by
element: ``tests/test_chipsim_noise.py`` runs both and compares the results
bit for bit.

- :func:`sfc64_fill`: the random words of one noise block (16 interleaved
  SFC64 generators seeded by 48 words of the chip's noise stream, see
  :mod:`chipsim.noise`);
- :func:`gather`: the pulses of the activation vectors, their event counts
  and the bits set in any activation (the range check), in one pass over the
  caller's array, whatever its integer dtype;
- :func:`readout_fast`: per noise block its random words, then the 16-bit
  fixed-point read-out with the ``fast`` noise, and the full model for the
  few values outside their column's 16-bit window (soft saturation,
  clipping), found from each column's extremes over the block;
- :func:`readout_gauss`: per noise block its standard normals (the Box-Muller
  draw of :mod:`chipsim.noise`) and the read-out with the ``gaussian`` noise;
- :func:`product`: the exact integer product of int16 pulses and weights
  (:func:`chipsim.kernel.fixed_point`) in register tiles;
- :func:`vmm_fast`, :func:`vmm_gauss`: a whole run, a noise block at a time
  (look-up, product, read-out in buffers that stay in cache), its blocks
  shared between threads (:class:`chipsim.kernel._Helpers`).

The hot loops are written as explicit LLVM vector code (numba
``@intrinsic`` functions emitting IR): the SFC64 generators with their state in
vector registers (:func:`_sfc64_lanes`), the pulse look-up as vector
gathers (:func:`_vector_gather`, LLVM's portable ``llvm.masked.gather``),
the Box-Muller normals (:func:`_emit_normals`), the read-outs 16 lanes a
step (:func:`_fast_chunk`, :func:`_gauss_chunk`) and the product's tiles
(:func:`_tile_intrinsic`). numba's own vectorizer left the look-up scalar,
kept the generators' state in memory, used half this width and turned the
int16 product into 32-bit multiplies (``docs/benchmarks.md``, issue 14).
The IR uses generic LLVM operations, except the product's pairwise
multiply-add, which is the CPU's own instruction where it has one
(AVX-512BW or AVX2; plain multiplies elsewhere): on a CPU without AVX-512
LLVM splits the vectors, and the results stay the same.

The loops release the GIL.
numba does not check bounds: every loop checks the shapes (and, where it
reads whole vectors, the contiguity) of its buffers first.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .geometry import COLS, ROWS
from .noise import SFC64_LANES as LANES
from .noise import (COS_COEF, GAUSS_GROUP, GAUSS_HALF, LN1P_COEF, LN2, NOISE_ROWS, SIN_COEF, SQRT2, TWO_PI,
                    WARM_UP)
from . import physics

_V_NONE = np.int32(1 << 30)  #: above every 16-bit value: the start of a column's least value
# the one formula, compiled for the loops below (numba keys its cache on this file alone: touch it when
# physics.py or the constants taken from noise.py change, or a stale cache keeps the old ones)
soft_saturate = njit(nogil=True)(physics.soft_saturate)


@intrinsic
def _popcount(typingctx, val):
    """Set bits of an integer (LLVM's ctpop: vectorizes to a table look-up or a popcount instruction)."""
    if not isinstance(val, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return val(val), codegen


def _splat(builder, vec_ty, value):
    """A vector of type ``vec_ty`` with ``value`` in every lane."""
    i32 = ir.IntType(32)
    v = builder.insert_element(ir.Constant(vec_ty, ir.Undefined), value, ir.Constant(i32, 0))
    return builder.shuffle_vector(v, ir.Constant(vec_ty, ir.Undefined),
                                  ir.Constant(ir.VectorType(i32, vec_ty.count), [0] * vec_ty.count))


def _open_loop(builder, name):
    """Start an IR loop: ``(entry, loop, done)`` blocks, the builder at the start of ``loop``.

    The caller adds its phis, the body and ``cbranch(..., loop, done)``.
    """
    entry = builder.block
    loop = builder.append_basic_block(f"{name}.loop")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(loop)
    builder.position_at_end(loop)
    return entry, loop, done


@intrinsic
def _sfc64_lanes(typingctx, a0, b0, c0, out, n_steps):
    """Run :data:`LANES` SFC64 generators side by side: :data:`WARM_UP` steps, then ``n_steps`` steps into ``out``.

    ``a0, b0, c0`` (uint64, :data:`LANES` each, contiguous) hold the
    generators' first states, ``out`` (uint64, contiguous, at least
    ``LANES * n_steps`` words) gets word ``LANES * i + j`` from generator ``j``
    at step ``i``. The state lives in vector registers across the loop (the
    compiler keeps an array-held state in memory, which made each step wait
    for its stores); a step is numpy's SFC64 step: the word ``a + b + w``
    (``w`` counts the steps from 1), then ``a = b ^ (b >> 11)``,
    ``b = c + (c << 3)``, ``c = rotl(c, 24) + word``.
    """
    sig = types.void(a0, b0, c0, out, n_steps)

    def codegen(context, builder, signature, args):
        arrays = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:4], args[:4])]
        i64 = ir.IntType(64)
        vec = ir.VectorType(i64, LANES)

        def const(k):
            return ir.Constant(vec, [k] * LANES)

        first = [builder.load(builder.bitcast(arr.data, vec.as_pointer()), align=8) for arr in arrays[:3]]
        scratch = cgutils.alloca_once(builder, vec)  # where the warm-up steps' words go
        total = builder.add(args[4], ir.Constant(i64, WARM_UP))
        entry, loop, done = _open_loop(builder, "sfc64")
        i = builder.phi(i64)
        a, b, c = (builder.phi(vec) for _ in range(3))
        i.add_incoming(ir.Constant(i64, 0), entry)
        for phi, v in zip((a, b, c), first):
            phi.add_incoming(v, entry)
        i_next = builder.add(i, ir.Constant(i64, 1))  # the counter w of step i is i + 1
        word = builder.add(builder.add(a, b), _splat(builder, vec, i_next))
        a_next = builder.xor(b, builder.lshr(b, const(11)))
        b_next = builder.add(c, builder.shl(c, const(3)))
        c_next = builder.add(builder.or_(builder.shl(c, const(24)), builder.lshr(c, const(40))), word)
        k = builder.sub(i, ir.Constant(i64, WARM_UP))
        dst = builder.bitcast(builder.gep(arrays[3].data, [builder.mul(k, ir.Constant(i64, LANES))]), vec.as_pointer())
        dst = builder.select(builder.icmp_signed(">=", k, ir.Constant(i64, 0)), dst, scratch)
        builder.store(word, dst, align=8)
        for phi, v in zip((a, b, c), (a_next, b_next, c_next)):
            phi.add_incoming(v, builder.block)
        i.add_incoming(i_next, builder.block)
        builder.cbranch(builder.icmp_signed("<", i_next, total), loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def sfc64_fill(seed, out):
    """Fill ``out`` (uint64, contiguous, a multiple of :data:`LANES` words) from :data:`LANES` interleaved SFC64 generators.

    Generator ``j`` starts at state ``(seed[3 j], seed[3 j + 1], seed[3 j + 2], 1)``,
    discards :data:`WARM_UP` outputs and writes words ``j, j + LANES, ...``:
    numpy's ``np.random.SFC64`` set to the same states gives the same words
    (:func:`chipsim.noise.sfc64_words`). The generators run side by side in
    vector registers (:func:`_sfc64_lanes`).
    """
    if seed.size < 3 * LANES or out.size % LANES or out.strides[0] != 8:
        raise ValueError("sfc64_fill: needs 3 * LANES seed words and a contiguous multiple of LANES output words")
    a = seed[0:3 * LANES:3].copy()
    b = seed[1:3 * LANES:3].copy()
    c = seed[2:3 * LANES:3].copy()
    _sfc64_lanes(a, b, c, out, out.size // LANES)


def _bytes(elem):
    """Size in bytes of an LLVM scalar type (integer, float or double)."""
    return elem.width // 8 if isinstance(elem, ir.IntType) else {"float": 4, "double": 8}[str(elem)]


def _vector_gather(builder, base, idx):
    """``base[idx]`` for a vector ``idx`` of i64 (a vector of the element type of the pointer ``base``).

    LLVM's ``llvm.masked.gather``, all lanes on: a gather instruction where
    the CPU has one, scalar loads elsewhere. The compiler does not vectorize
    table look-ups in loops by itself; the loops here call it explicitly.
    """
    from llvmlite import binding

    n = idx.type.count
    elem = base.type.pointee
    i32, i64 = ir.IntType(32), ir.IntType(64)
    v_elem = ir.VectorType(elem, n)
    v_ptr = ir.VectorType(elem.as_pointer(), n)
    size = _bytes(elem)
    addr = builder.add(_splat(builder, idx.type, builder.ptrtoint(base, i64)),
                       builder.mul(idx, ir.Constant(idx.type, [size] * n)))
    ptrs = builder.inttoptr(addr, v_ptr)
    suffix = str(elem) if isinstance(elem, ir.IntType) else {"float": "f32", "double": "f64"}[str(elem)]
    # LLVM 17 and later have opaque pointers only (mangled "p0"); earlier ones mangle the pointee type too
    ptr_name = "p0" if binding.llvm_version_info[0] >= 17 else "p0" + suffix
    name = f"llvm.masked.gather.v{n}{suffix}.v{n}{ptr_name}"
    fnty = ir.FunctionType(v_elem, [v_ptr, i32, ir.VectorType(ir.IntType(1), n), v_elem])
    fn = builder.module.globals.get(name) or ir.Function(builder.module, fnty, name)
    return builder.call(fn, [ptrs, ir.Constant(i32, size), ir.Constant(ir.VectorType(ir.IntType(1), n), [1] * n),
                             ir.Constant(v_elem, ir.Undefined)])


def _vector_at(builder, base, start, vec_ty):
    """A pointer to the vector ``vec_ty`` at element ``start`` of the pointer ``base``."""
    return builder.bitcast(builder.gep(base, [start]), vec_ty.as_pointer())


@intrinsic
def _gather_row(typingctx, table, x_i, p_i):
    """One row of :func:`gather` in explicit vectors: ``p_i[r] = table[32 r + (x_i[r] & 31)]`` for all 128 ``r``.

    Returns ``(OR of x_i, non-zero values of x_i)`` (the OR zero-extended to
    int64). Sixteen activations a step: their OR and count accumulate in
    vector registers, the pulses come from a vector gather (the compiler
    leaves the table look-up scalar by itself). ``x_i`` (any integer dtype)
    and ``p_i`` (int16, or the table's dtype) contiguous, ``table`` the flat
    (128 * 32,) table (int32: the values are truncated to ``p_i``'s type);
    the caller checks it.
    """
    sig = types.UniTuple(types.int64, 2)(table, x_i, p_i)

    def codegen(context, builder, signature, args):
        tab, xs, ps = _data_pointers(context, builder, signature, args)
        n = READ_LANES
        i64 = ir.IntType(64)
        v_x = ir.VectorType(context.get_value_type(signature.args[1].dtype), n)
        v64 = ir.VectorType(i64, n)
        seen = ir.Constant(v_x, [0] * n)
        count = ir.Constant(v64, [0] * n)
        for r0 in range(0, ROWS, n):
            start = ir.Constant(i64, r0)
            xv = builder.load(_vector_at(builder, xs, start, v_x), align=_bytes(v_x.element))
            seen = builder.or_(seen, xv)
            count = builder.add(count, builder.zext(builder.icmp_unsigned("!=", xv, ir.Constant(v_x, [0] * n)), v64))
            x64 = builder.zext(xv, v64) if v_x.element.width < 64 else xv
            idx = builder.or_(ir.Constant(v64, [(r0 + k) << 5 for k in range(n)]),
                              builder.and_(x64, ir.Constant(v64, [31] * n)))
            got = _vector_gather(builder, tab, idx)
            if got.type.element != ps.type.pointee:  # an int32 table into int16 pulses
                got = builder.trunc(got, ir.VectorType(ps.type.pointee, n))
            builder.store(got, _vector_at(builder, ps, start, got.type), align=_bytes(got.type.element))
        width = v_x.element.width
        seen = _call_intrinsic(builder, f"llvm.vector.reduce.or.v{n}i{width}", v_x.element, [seen])
        seen = builder.zext(seen, i64) if width < 64 else seen
        count = _call_intrinsic(builder, f"llvm.vector.reduce.add.v{n}i64", i64, [count])
        return context.make_tuple(builder, signature.return_type, [seen, count])

    return sig, codegen


def _horner(builder, x, coef):
    """IR: ``sum(coef[k] x^k)`` for a float32 vector ``x``, as :func:`chipsim.noise._horner` computes it."""
    acc = ir.Constant(x.type, [float(coef[-1])] * x.type.count)
    for c in coef[-2::-1]:
        acc = builder.fadd(builder.fmul(acc, x), ir.Constant(x.type, [float(c)] * x.type.count))
    return acc


def _emit_normals(builder, a, b):
    """IR: :func:`chipsim.noise.box_muller` of the uint32 vectors ``a`` and ``b``: ``(r cos, r sin)``, float32 vectors.

    The same float32 operations in the same order (no fused multiply-adds:
    the IR carries no fast-math flags), so the same bits as numpy's.
    """
    n = a.type.count
    vi, vf = a.type, ir.VectorType(ir.FloatType(), n)

    def ci(v):
        return ir.Constant(vi, [v] * n)

    def cf(v):
        return ir.Constant(vf, [float(v)] * n)

    u1 = builder.fmul(builder.fadd(builder.uitofp(builder.lshr(a, ci(9)), vf), cf(0.5)), cf(2.0 ** -23))
    bits = builder.bitcast(u1, vi)
    expo = builder.sub(builder.lshr(bits, ci(23)), ci(127))
    mant = builder.bitcast(builder.or_(builder.and_(bits, ci(0x7FFFFF)), ci(0x3F800000)), vf)
    big = builder.fcmp_ordered(">", mant, cf(SQRT2))
    mant = builder.select(big, builder.fmul(mant, cf(0.5)), mant)
    expo = builder.add(expo, builder.zext(big, vi))
    f = builder.fsub(mant, cf(1.0))
    ln = builder.fadd(builder.fmul(builder.sitofp(expo, vf), cf(LN2)), builder.fmul(f, _horner(builder, f, LN1P_COEF)))
    r = _call_intrinsic(builder, f"llvm.sqrt.v{n}f32", vf, [builder.fmul(cf(-2.0), ln)])
    u2 = builder.fmul(builder.uitofp(builder.lshr(b, ci(8)), vf), cf(2.0 ** -24))
    q = _call_intrinsic(builder, f"llvm.rint.v{n}f32", vf, [builder.fmul(u2, cf(4.0))])
    y = builder.fmul(builder.fsub(u2, builder.fmul(q, cf(0.25))), cf(TWO_PI))
    y2 = builder.fmul(y, y)
    sin, cos = builder.fmul(y, _horner(builder, y2, SIN_COEF)), _horner(builder, y2, COS_COEF)
    quadrant = builder.and_(builder.fptosi(q, vi), ci(3))
    swap = builder.icmp_signed("==", builder.and_(quadrant, ci(1)), ci(1))
    c, s = builder.select(swap, sin, cos), builder.select(swap, cos, sin)
    c = builder.select(builder.icmp_signed("==", builder.and_(builder.add(quadrant, ci(1)), ci(2)), ci(2)),
                       builder.fneg(c), c)  # quadrants 1 and 2
    s = builder.select(builder.icmp_signed(">=", quadrant, ci(2)), builder.fneg(s), s)
    return builder.fmul(r, c), builder.fmul(r, s)


def _load_pair(builder, half, start):
    """IR: the two uint32 vectors of the Box-Muller group of :data:`GAUSS_GROUP` words at ``half[start]``."""
    vi = ir.VectorType(ir.IntType(32), GAUSS_HALF)
    second = builder.add(start, ir.Constant(start.type, GAUSS_HALF))
    return (builder.load(_vector_at(builder, half, start, vi), align=4),
            builder.load(_vector_at(builder, half, second, vi), align=4))


READ_LANES = 16  #: columns per step of the read-out loops (COLS is a multiple)


def _call_intrinsic(builder, name, ret, arg_values):
    """Call the LLVM intrinsic ``name`` (declared on first use) with ``arg_values``."""
    fn = builder.module.globals.get(name) or ir.Function(
        builder.module, ir.FunctionType(ret, [v.type for v in arg_values]), name)
    return builder.call(fn, arg_values)


def _data_pointers(context, builder, signature, args):
    """The data pointers of the array arguments, the other arguments as they are."""
    return [context.make_array(t)(context, builder, v).data if isinstance(t, types.Array) else v
            for t, v in zip(signature.args, args)]


@intrinsic
def _fast_chunk(typingctx, y_i, off, byte0, byte1, dither, A, K, v_min, v_max, out_i, pre_hi, c0):
    """Columns ``c0 .. c0 + 15`` of one row of :func:`readout_fast`, as 16-lane vectors.

    Per column ``c``: ``v = floor(y_i[c] + off[c])`` clipped into 0..pre_hi
    (:func:`_fixed`), ``v_min[c]``/``v_max[c]`` updated, the noise
    ``t = A[c] (popcount(byte0[c]) + popcount(byte1[c])) + K[c] dither[c]``
    and ``out_i[c] = low byte of ((v + t) >> 7)``, in 16-bit arithmetic
    (``v + t <= 65535``). Written as explicit vectors because the compiler
    vectorizes the same loop at half this width (AVX-512 machines run each
    step in one register; others split it). Contiguous arrays; the caller
    checks the shapes.
    """
    sig = types.void(y_i, off, byte0, byte1, dither, A, K, v_min, v_max, out_i, pre_hi, c0)

    def codegen(context, builder, signature, args):
        yp, op, b0p, b1p, dp, ap, kp, lo_p, hi_p, outp, pre, start = _data_pointers(context, builder, signature, args)
        n = READ_LANES
        vf, v32, v16, v8 = (ir.VectorType(t, n) for t in (ir.FloatType(), ir.IntType(32), ir.IntType(16),
                                                            ir.IntType(8)))

        def load(ptr, vec):
            return builder.load(_vector_at(builder, ptr, start, vec), align=_bytes(vec.element))

        def store(value, ptr):
            builder.store(value, _vector_at(builder, ptr, start, value.type), align=_bytes(value.type.element))

        f = builder.fadd(load(yp, vf), load(op, vf))
        zero = ir.Constant(vf, [0.0] * n)
        f = builder.select(builder.fcmp_ordered(">", f, zero), f, zero)
        top = _splat(builder, vf, pre)
        v = builder.fptosi(builder.select(builder.fcmp_ordered("<", f, top), f, top), v32)
        least, most = load(lo_p, v32), load(hi_p, v32)
        store(builder.select(builder.icmp_signed("<", v, least), v, least), lo_p)
        store(builder.select(builder.icmp_signed(">", v, most), v, most), hi_p)
        count = builder.add(_call_intrinsic(builder, f"llvm.ctpop.v{n}i8", v8, [load(b0p, v8)]),
                            _call_intrinsic(builder, f"llvm.ctpop.v{n}i8", v8, [load(b1p, v8)]))
        t = builder.add(builder.mul(load(ap, v16), builder.zext(count, v16)),
                        builder.mul(load(kp, v16), builder.zext(load(dp, v8), v16)))
        r = builder.lshr(builder.add(builder.trunc(v, v16), t), ir.Constant(v16, [7] * n))
        store(builder.trunc(r, v8), outp)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _normals(typingctx, half, e, s):
    """``e[s .. s + 31]`` = the Box-Muller normals (float32) of the words ``half[s .. s + 31]`` (:func:`_emit_normals`)."""
    sig = types.void(half, e, s)

    def codegen(context, builder, signature, args):
        hp, ep, start = _data_pointers(context, builder, signature, args)
        cos, sin = _emit_normals(builder, *_load_pair(builder, hp, start))
        builder.store(cos, _vector_at(builder, ep, start, cos.type), align=4)
        second = builder.add(start, ir.Constant(start.type, GAUSS_HALF))
        builder.store(sin, _vector_at(builder, ep, second, sin.type), align=4)
        return context.get_dummy_value()

    return sig, codegen


def _gauss_chunk(rounding):
    """The intrinsic for columns ``c0 .. c0 + 31`` of one row of :func:`readout_gauss` without soft saturation.

    ``chunk(y_i, off, half, s, std, lo, hi, out_i, c0)``: the Box-Muller
    normals ``e`` of the words ``half[s .. s + 31]`` (:func:`_emit_normals`),
    then ``out_i[c] = clip(rounding((y_i[c] + off[c]) + std[c] * e), lo[c], hi[c])``
    in float32 with ``rounding`` "rint" or "floor", as 16-lane vectors; the
    same operations in the same order as the loops of :func:`readout_gauss`.
    """
    @intrinsic
    def chunk(typingctx, y_i, off, half, s, std, lo, hi, out_i, c0):
        sig = types.void(y_i, off, half, s, std, lo, hi, out_i, c0)

        def codegen(context, builder, signature, args):
            yp, op, hp, s_start, sp, lop, hip, outp, c_start = _data_pointers(context, builder, signature, args)
            n = GAUSS_HALF
            vf, v8 = ir.VectorType(ir.FloatType(), n), ir.VectorType(ir.IntType(8), n)
            for half_k, e in enumerate(_emit_normals(builder, *_load_pair(builder, hp, s_start))):
                start = builder.add(c_start, ir.Constant(c_start.type, half_k * n))

                def load(ptr):
                    return builder.load(_vector_at(builder, ptr, start, vf), align=4)

                z = builder.fadd(builder.fadd(load(yp), load(op)), builder.fmul(load(sp), e))
                z = _call_intrinsic(builder, f"llvm.{rounding}.v{n}f32", vf, [z])
                low, high = load(lop), load(hip)
                z = builder.select(builder.fcmp_ordered(">", z, low), z, low)
                z = builder.select(builder.fcmp_ordered("<", z, high), z, high)
                builder.store(builder.fptosi(z, v8), _vector_at(builder, outp, start, v8), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return chunk


_gauss_chunk_rint = _gauss_chunk("rint")
_gauss_chunk_floor = _gauss_chunk("floor")


# ------------------------------------------------------------ the product
TILE_ROWS = 6  #: vectors per tile of the product (6 x 4 accumulators and 4 weight vectors fit 32 registers)
TILE_COLS = 64  #: columns per tile (4 vectors of 16)
PAIRS = ROWS // 2  #: the product takes the 128 rows in pairs of int16


def _features(context):
    """The CPU features numba compiles for (``+name`` entries of its target machine), a set of names."""
    text = getattr(context.codegen(), "_tm_features", "") or ""
    return {f[1:] for f in text.split(",") if f.startswith("+")}


def _dot_pairs(builder, features, acc, a, b):
    """IR: ``acc[j] + a[2j] b[2j] + a[2j+1] b[2j+1]`` for 16 lanes; ``a, b`` are <16 x i32> holding int16 pairs.

    Integer arithmetic modulo 2**32 (the caller keeps every sum in range):
    AVX-512's ``vpmaddwd`` (which LLVM fuses with the addition into
    ``vpdpwssd`` where the CPU has AVX512-VNNI), AVX2's on two halves, or
    plain widening multiplies elsewhere: the same numbers on every CPU.
    """
    i16, i32 = ir.IntType(16), ir.IntType(32)
    n = acc.type.count
    if "avx512bw" in features or "avx2" in features:
        w = 16 if "avx512bw" in features else 8  # int32 lanes per instruction
        name = "llvm.x86.avx512.pmaddw.d.512" if w == 16 else "llvm.x86.avx2.pmadd.wd"
        parts = []
        for h in range(0, n, w):
            sel = ir.Constant(ir.VectorType(i32, w), list(range(h, h + w)))
            part = [builder.bitcast(builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), sel) if w < n else v,
                                    ir.VectorType(i16, 2 * w)) for v in (a, b)]
            parts.append(_call_intrinsic(builder, name, ir.VectorType(i32, w), part))
        s = parts[0] if len(parts) == 1 else builder.shuffle_vector(
            parts[0], parts[1], ir.Constant(ir.VectorType(i32, n), list(range(n))))
        return builder.add(acc, s)
    v16 = ir.VectorType(i16, 2 * n)
    a16, b16 = builder.bitcast(a, v16), builder.bitcast(b, v16)
    u = ir.Constant(v16, ir.Undefined)

    def lanes(v, first):
        sel = ir.Constant(ir.VectorType(i32, n), list(range(first, 2 * n, 2)))
        return builder.sext(builder.shuffle_vector(v, u, sel), acc.type)

    even, odd = builder.mul(lanes(a16, 0), lanes(b16, 0)), builder.mul(lanes(a16, 1), lanes(b16, 1))
    return builder.add(acc, builder.add(even, odd))


def _tile_intrinsic(features=None):
    """The product's tile, for the CPU features ``features`` (None: those numba compiles for).

    ``tile(pb, wp, yb, scale, i0, c0)``: for the :data:`TILE_ROWS` rows
    ``i0..`` and the :data:`TILE_COLS` columns ``c0..``, ``yb[i, c] =
    float32(sum_r P[i, r] W[r, c]) * scale[c]`` (float32) with the int16 pulses ``P`` as
    int32 pairs ``pb`` (rows x 64) and the weights as pairs ``wp[k, c] =
    (W[2k, c], W[2k + 1, c])`` (64 x 256). The 24 accumulators stay in vector
    registers over the 64 pairs (:func:`_dot_pairs`); the sums are exact
    (int32, the plan keeps them in range), so the order of the additions does
    not matter. Contiguous arrays; the caller checks the shapes.
    """
    @intrinsic
    def tile(typingctx, pb, wp, yb, scale, i0, c0):
        sig = types.void(pb, wp, yb, scale, i0, c0)

        def codegen(context, builder, signature, args):
            feats = _features(context) if features is None else set(features)
            pp, wpp, ypp, sc, r0, col0 = _data_pointers(context, builder, signature, args)
            i64 = ir.IntType(64)
            v = ir.VectorType(ir.IntType(32), 16)
            vf = ir.VectorType(ir.FloatType(), 16)
            nz = TILE_COLS // 16

            def c(k):
                return ir.Constant(i64, k)

            entry, loop, done = _open_loop(builder, "tile")
            k = builder.phi(i64)
            k.add_incoming(c(0), entry)
            accs = [[builder.phi(v) for _ in range(nz)] for _ in range(TILE_ROWS)]
            for row in accs:
                for acc in row:
                    acc.add_incoming(ir.Constant(v, [0] * 16), entry)
            w_at = builder.add(builder.mul(k, c(COLS)), col0)
            wv = [builder.load(_vector_at(builder, wpp, builder.add(w_at, c(16 * z)), v), align=4) for z in range(nz)]
            new = []
            for r, row in enumerate(accs):
                p_at = builder.add(builder.mul(builder.add(r0, c(r)), c(PAIRS)), k)
                pv = _splat(builder, v, builder.load(builder.gep(pp, [p_at]), align=4))
                new.append([_dot_pairs(builder, feats, acc, pv, wz) for acc, wz in zip(row, wv)])
            for row, new_row in zip(accs, new):
                for acc, value in zip(row, new_row):
                    acc.add_incoming(value, builder.block)
            k_next = builder.add(k, c(1))
            k.add_incoming(k_next, builder.block)
            builder.cbranch(builder.icmp_signed("<", k_next, c(PAIRS)), loop, done)
            builder.position_at_end(done)
            scale = [builder.load(_vector_at(builder, sc, builder.add(col0, c(16 * z)), vf), align=4)
                     for z in range(nz)]
            for r, row in enumerate(new):
                y_at = builder.add(builder.mul(builder.add(r0, c(r)), c(COLS)), col0)
                for z, acc in enumerate(row):
                    f = builder.fmul(builder.sitofp(acc, vf), scale[z])  # two roundings, as numpy's
                    builder.store(f, _vector_at(builder, ypp, builder.add(y_at, c(16 * z)), vf), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_tile = _tile_intrinsic()


@njit(nogil=True, cache=True)
def product(pb, wp, yb, scale, n):
    """``yb[i] = float32(P[i] @ W) * scale`` for the rows ``i < n`` rounded up to whole tiles (:func:`_tile_intrinsic`).

    ``pb`` (int32, rows x 64): the int16 pulses of each vector, two a word;
    ``wp`` (int32, 64 x 256): the int16 weights, rows ``2k`` and ``2k + 1`` of
    column ``c`` in word ``wp[k, c]``; ``yb`` float32 (rows x 256); ``scale``
    float32 (256,), per column. ``pb`` and ``yb`` need at least ``n`` rows
    rounded up to a multiple of :data:`TILE_ROWS` (those extra rows are
    computed too, from whatever ``pb`` holds there).
    """
    padded = -(-n // TILE_ROWS) * TILE_ROWS
    if (pb.shape[1] != PAIRS or wp.shape[0] != PAIRS or wp.shape[1] != COLS or yb.shape[1] != COLS
            or pb.shape[0] < padded or yb.shape[0] < padded or pb.strides[1] != 4 or pb.strides[0] != 4 * PAIRS
            or wp.strides[1] != 4 or wp.strides[0] != 4 * COLS or yb.strides[1] != 4 or yb.strides[0] != 4 * COLS
            or scale.size != COLS or scale.strides[0] != 4):
        raise ValueError("product: shapes do not match")
    for i0 in range(0, n, TILE_ROWS):
        for c0 in range(0, COLS, TILE_COLS):
            _tile(pb, wp, yb, scale, i0, c0)


@njit(nogil=True, cache=True)
def _block_buffers(m):
    """The product's buffers for one noise block of a call of ``m`` rows: pulses (int16 and their int32 pairs), yb."""
    rows = -(-min(m, NOISE_ROWS) // TILE_ROWS) * TILE_ROWS
    pb = np.zeros((rows, PAIRS), dtype=np.int32)
    return pb, pb.view(np.int16), np.empty((rows, COLS), dtype=np.float32)


@intrinsic
def _claim(typingctx, counter):
    """``counter[0] += 1`` as one atomic operation; returns the value before (int64, a contiguous int64 array)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("add", data, ir.Constant(ir.IntType(64), 1), "seq_cst")

    return sig, codegen


def _flag_intrinsic(load):
    """The intrinsic that reads (``load``) or sets flag ``flags[i]`` of an int64 array, atomically.

    Setting stores 1 with release order: what the thread wrote before is
    seen by whoever reads the flag set, with acquire order.
    """
    @intrinsic
    def flag(typingctx, flags, i):
        sig = (types.boolean if load else types.void)(flags, i)

        def codegen(context, builder, signature, args):
            ptr = builder.gep(context.make_array(signature.args[0])(context, builder, args[0]).data, [args[1]])
            if load:
                got = builder.load_atomic(ptr, "acquire", 8)
                return builder.icmp_unsigned("!=", got, ir.Constant(ptr.type.pointee, 0))
            builder.store_atomic(ir.Constant(ptr.type.pointee, 1), ptr, "release", 8)
            return context.get_dummy_value()

        return sig, codegen

    return flag


_publish = _flag_intrinsic(load=False)  #: ``_publish(flags, i)``: ``flags[i] = 1``
_published = _flag_intrinsic(load=True)  #: ``_published(flags, i)``: ``flags[i] != 0``


@njit(nogil=True, cache=True)
def _start(x, out, events, share, helper):
    """One thread's state in a shared run: ``(todo, state, pb, p16, yb, out_to, events_to)``.

    ``todo[b]``: 0 not seen, 1 computed by this thread, 2 copied from a
    helper, 3 left to compute; ``state``: the OR of the activations this
    thread saw, the phase (0 taking blocks from the counter, 1 computing
    what the helpers left), the next index of ``todo``. A helper writes
    into the share's buffers, the caller into ``out`` and ``events``.
    """
    m = x.shape[0]
    n_blocks = -(-m // NOISE_ROWS)
    out_h, events_h, seen_h, done, counter = share
    if (out.shape[0] != m or events.size != m or counter.size != 1 or done.size < n_blocks
            or seen_h.size < n_blocks or (out_h.shape[0] != 0 and (out_h.shape[0] != m or events_h.size != m))
            or (helper and out_h.shape[0] != m)):
        raise ValueError("vmm: shapes do not match")
    pb, p16, yb = _block_buffers(m)
    todo, state = np.zeros(n_blocks, dtype=np.int8), np.zeros(3, dtype=np.int64)
    return (todo, state, pb, p16, yb, out_h if helper else out, events_h if helper else events)


@njit(nogil=True, cache=True)
def _next_block(x, out, events, share, helper, work):
    """The next block this thread computes, or -1 when none is left.

    First blocks from the counter (:func:`_claim`); then, in the caller
    only, it copies the blocks the helpers have published (:func:`_published`)
    and returns the ones they took but have not finished, one by one.
    """
    out_h, events_h, seen_h, done, counter = share
    todo, state = work[0], work[1]
    if state[1] == 0:
        blk = _claim(counter)
        if blk < todo.size:
            todo[blk] = 1
            return blk
        if helper:
            return -1
        state[1] = 1
        for b in range(todo.size):
            if todo[b] == 1:
                continue
            if _published(done, b):
                r0, r1, _ = _block(b, x.shape[0])
                out[r0:r1] = out_h[r0:r1]
                events[r0:r1] = events_h[r0:r1]
                state[0] |= seen_h[b]
                todo[b] = 2
            else:
                todo[b] = 3
    while state[2] < todo.size:
        b = state[2]
        state[2] += 1
        if todo[b] == 3:
            return b
    return -1


@njit(nogil=True, cache=True)
def _after(x, out, events, share, helper, work, blk, seen):
    """Record block ``blk`` (its activations' OR ``seen``); returns the next block (:func:`_next_block`)."""
    if helper:
        share[2][blk] = seen
        _publish(share[3], blk)
    else:
        work[1][0] |= seen
    return _next_block(x, out, events, share, helper, work)


@njit(nogil=True, cache=True)
def _block_front(x, blk, table, wp, scale, work):
    """Pulses and product of noise block ``blk`` into the thread's buffers; ``(OR of its activations, r0, r1)``."""
    r0, r1, _ = _block(blk, x.shape[0])
    seen = gather(x[r0:r1], table, work[3][:r1 - r0], work[6][r0:r1])
    product(work[2], wp, work[4], scale, r1 - r0)
    return seen, r0, r1


@njit(nogil=True, cache=True)
def vmm_fast(x, table, wp, scale, off, seeds, out, events, share, helper, A, K, pre_hi, win_lo, win_hi, fscale, base,
             shift, sat, has_sat, lo, hi):
    """One run of the compiled kernel with the ``fast`` noise, a noise block at a time; returns the OR of ``x``.

    Per block of 256 vectors the pulses (:func:`gather`, int16, checking
    nothing: the caller checks the returned OR), the product
    (:func:`product`) and the read-out (:func:`readout_fast`), in buffers of
    one block that stay in the CPU's cache. ``seeds`` has a row per block
    (none without noise); the arguments after ``helper`` are
    :func:`readout_fast`'s.

    Threads share a run through ``share = (out_h, events_h, seen_h, done,
    counter)``: each takes the next block from ``counter`` until none is
    left (:func:`_next_block`). A helper (``helper`` true) writes its blocks
    into ``out_h``, ``events_h`` and ``seen_h`` and marks each in ``done``
    (:func:`_after`); the calling thread writes into ``out`` and ``events``,
    then copies the helpers' finished blocks and computes any block a helper
    has taken but not finished itself. So the call never waits for a helper
    (one that the OS does not run for a while only leaves more work to the
    caller), and a helper that finishes late writes into its own buffers
    only. Alone: ``out_h`` with no rows, and the caller takes every block.
    """
    work = _start(x, out, events, share, helper)
    blk = _next_block(x, out, events, share, helper, work)
    while blk >= 0:
        seen, r0, r1 = _block_front(x, blk, table, wp, scale, work)
        readout_fast(work[4][:r1 - r0], off, seeds[blk:blk + 1], work[5][r0:r1], 0, 1, A, K, pre_hi, win_lo, win_hi,
                     fscale, base, shift, sat, has_sat, lo, hi)
        blk = _after(x, out, events, share, helper, work, blk, seen)
    return x.dtype.type(work[1][0])


@njit(nogil=True, cache=True)
def vmm_gauss(x, table, wp, scale, off, seeds, out, events, share, helper, std, round_down, sat, has_sat, lo, hi):
    """:func:`vmm_fast` with the ``gaussian`` read-out (:func:`readout_gauss`)."""
    work = _start(x, out, events, share, helper)
    blk = _next_block(x, out, events, share, helper, work)
    while blk >= 0:
        seen, r0, r1 = _block_front(x, blk, table, wp, scale, work)
        readout_gauss(work[4][:r1 - r0], off, seeds[blk:blk + 1], work[5][r0:r1], 0, 1, std, round_down, sat, has_sat,
                      lo, hi)
        blk = _after(x, out, events, share, helper, work, blk, seen)
    return x.dtype.type(work[1][0])


@njit(nogil=True, cache=True)
def gather(x, table, pulses, events):
    """``pulses[i, r] = table[32 r + x[i, r]]``, ``events[i]`` = non-zero activations of row ``i``; returns the OR of ``x``.

    ``x`` holds activations of any integer dtype, not yet checked: the caller
    checks the returned OR of all values (``seen >> 5 != 0``: some value is
    negative or above 31) before using anything else; out-of-range values only
    ever index the table modulo 32. ``table`` is the flat (128 * 32,) float32
    pulse table. A row at a time in explicit vectors (:func:`_gather_row`)
    if the rows of ``x`` and ``pulses`` are contiguous, else a scalar loop.
    """
    m = x.shape[0]
    if (x.shape[1] != ROWS or pulses.shape[0] != m or pulses.shape[1] != ROWS or events.size != m
            or table.size != 32 * ROWS):
        raise ValueError("gather: shapes do not match")
    seen = x.dtype.type(0)
    if x.strides[1] == x.itemsize and pulses.strides[1] == pulses.itemsize and table.strides[0] == 4:
        for i in range(m):
            row_seen, events[i] = _gather_row(table, x[i], pulses[i])
            seen |= x.dtype.type(row_seen)
        return seen
    for i in range(m):
        x_i, p_i = x[i], pulses[i]
        e = 0
        for r in range(ROWS):
            a = x_i[r]
            seen |= a
            e += np.int64(a != 0)
            p_i[r] = table[(r << 5) | np.intp(a & 31)]
        events[i] = e
    return seen


@njit(nogil=True, cache=True)
def _check_readout(y, off, out, seeds, b0, b1, seed_words):
    m = y.shape[0]
    if (y.shape[1] != COLS or out.shape[0] != m or out.shape[1] != COLS or off.size != COLS
            or y.strides[1] != 4 or out.strides[1] != 1 or off.strides[0] != 4
            or b0 < 0 or b1 < b0 or (b1 - 1) * NOISE_ROWS >= max(m, 1) * (b1 > b0)
            or (seeds.shape[0] > 0 and (seeds.shape[0] < b1 or seeds.shape[1] < seed_words))):
        raise ValueError("readout: shapes do not match")


@njit(nogil=True, cache=True)
def _block(blk, m):
    """First and end row of noise block ``blk`` of ``m`` rows, and its number of samples."""
    r0 = blk * NOISE_ROWS
    r1 = min(r0 + NOISE_ROWS, m)
    return r0, r1, (r1 - r0) * COLS


@njit(nogil=True, cache=True)
def readout_fast(y, off, seeds, out, b0, b1, A, K, pre_hi, win_lo, win_hi, scale, base, shift, sat, has_sat, lo, hi):
    """Read-out with the ``fast`` noise of noise blocks ``b0..b1-1`` (256 rows each) in 16-bit fixed point.

    Per block: its random words from ``seeds[b]`` (:func:`sfc64_fill`, laid out
    as :func:`chipsim.noise.binomial_counts` says); then row by row, 16
    columns a step (:func:`_fast_chunk`), ``v = floor(y + off)`` (clipped into 0..pre_hi
    first), each column's least and largest ``v``, the fixed-point noise
    ``t = A B + K j`` and ``result = ((v + t) >> 7) - BIAS`` as the low byte
    (16-bit arithmetic: ``v + t <= 65535`` by the choice of ``pre_hi``); last,
    in every column whose extremes leave its window (where the 16-bit result
    is exact), the results whose ``v`` lies outside it again with the full
    model in float64 (soft saturation of the mean, rounding, clipping) as
    :func:`chipsim.kernel.reference` computes them.

    Parameters
    ----------
    y : float32 (m, 256)
        The matrix product (scaled, without the offsets row).
    off : float32 (256,)
        The offsets row of the plan (scaled offsets + base).
    seeds : uint64 (n_blocks, 48), or (0, 48) for no noise
    out : int8 (m, 256)
    b0, b1 : int
        The noise blocks to read out.
    A, K : uint16 (256,)
        Fixed-point noise ``A B + K j`` per column (at most ``t_max < 2 ** 14``).
    pre_hi : float32
        Highest value converted to 16 bits (``65535 - t_max``).
    win_lo, win_hi : int32 (256,)
        The window of ``v`` per column, ``win_lo[c] <= v <= win_hi[c]`` (a start
        beyond 65535: every value of the column is recomputed).
    scale : float
    base, shift : float64 (256,)
    sat : float64 (4, 256)
        ``knee_hi, sat_hi, knee_lo, sat_lo`` (used if ``has_sat``).
    lo, hi : float64 (256,)
        Result bounds per column.
    """
    noisy = seeds.shape[0] > 0
    _check_readout(y, off, out, seeds, b0, b1, 3 * LANES)
    if (win_lo.size != COLS or win_hi.size != COLS or A.size != COLS or K.size != COLS or A.strides[0] != 2
            or K.strides[0] != 2):
        raise ValueError("readout: shapes do not match")
    m = y.shape[0]
    n_words = min(m, NOISE_ROWS) * COLS * 3 // 8  # one block's words, no more than the call needs
    if noisy:
        words = np.empty(n_words, dtype=np.uint64)
    else:
        words = np.zeros(n_words, dtype=np.uint64)  # without noise all zero: t = 0
    raw = words.view(np.uint8)
    v_min = np.empty(COLS, dtype=np.int32)
    v_max = np.empty(COLS, dtype=np.int32)
    for blk in range(b0, b1):
        r0, r1, n = _block(blk, m)
        if noisy:
            sfc64_fill(seeds[blk], words[:n * 3 // 8])
        byte0, byte1, dither = raw[:n], raw[n:2 * n], raw[2 * n:3 * n]  # the three byte planes
        v_min[:] = _V_NONE
        v_max[:] = 0
        for i in range(r0, r1):
            s0 = (i - r0) * COLS
            y_i, out_i = y[i], out[i]
            b0_i, b1_i, d_i = byte0[s0:s0 + COLS], byte1[s0:s0 + COLS], dither[s0:s0 + COLS]
            for c0 in range(0, COLS, READ_LANES):  # BIAS is a multiple of 256: the low byte is the result
                _fast_chunk(y_i, off, b0_i, b1_i, d_i, A, K, v_min, v_max, out_i, pre_hi, c0)
        for c in range(COLS):
            if v_min[c] < win_lo[c] or v_max[c] > win_hi[c]:  # the full model for the values outside the window
                for i in range(r0, r1):
                    vi = _fixed(y[i, c] + off[c], pre_hi)
                    if vi < win_lo[c] or vi > win_hi[c]:
                        s = (i - r0) * COLS + c
                        tc = np.int32(A[c]) * _bits(byte0[s], byte1[s]) + np.int32(K[c]) * np.int32(dither[s]) \
                            if noisy else 0
                        mean = np.float64(y[i, c] + off[c]) / scale - base[c]
                        if has_sat:
                            mean = soft_saturate(mean, sat[0, c], sat[1, c], sat[2, c], sat[3, c])
                        z = mean + shift[c]
                        z += tc / 128.0
                        out[i, c] = np.int8(min(max(np.floor(z), lo[c]), hi[c]))


@njit(nogil=True, cache=True)
def _bits(u, v):
    """Set bits of two random bytes: the binomial count ``B`` of one ``fast`` sample."""
    return np.int32(_popcount(u)) + np.int32(_popcount(v))


@njit(nogil=True, cache=True)
def _fixed(f, pre_hi):
    """``floor(f)`` as int32 after clipping ``f`` (float32) into 0..pre_hi."""
    f = f if f > np.float32(0.0) else np.float32(0.0)
    f = f if f < pre_hi else pre_hi
    return np.int32(f)  # f >= 0: truncation is floor


@njit(nogil=True, cache=True)
def readout_gauss(y, off, seeds, out, b0, b1, std, round_down, sat, has_sat, lo, hi):
    """Read-out with the ``gaussian`` noise of noise blocks ``b0..b1-1`` (256 rows each).

    ``result = round(mean + std e)`` (``floor`` if ``round_down``), clipped to
    ``lo..hi``, with the mean ``y + off`` soft-saturated in float64 and ``e`` a
    standard normal (float32) from the block's words: 32 bits per sample, laid
    out as :func:`chipsim.noise.gauss_normals` reads them. With noise the sum
    and the rounding are float32 (the mean rounded to float32 first), without
    it float64. Without soft saturation one vector pass draws the normals and
    reads out (:func:`_gauss_chunk`); with it, the normals of a block first
    (:func:`normals`), then the loops.

    Parameters
    ----------
    y : float32 (m, 256)
    off : float32 (256,)
    seeds : uint64 (n_blocks, 48), or (0, 48) for no noise
    out : int8 (m, 256)
    b0, b1 : int
    std : float32 (256,)
    round_down : bool
    sat : float64 (4, 256)
    has_sat : bool
    lo, hi : float32 (256,)
    """
    noisy = seeds.shape[0] > 0
    _check_readout(y, off, out, seeds, b0, b1, 3 * LANES)
    if (std.size != COLS or lo.size != COLS or hi.size != COLS or std.strides[0] != 4 or lo.strides[0] != 4
            or hi.strides[0] != 4):
        raise ValueError("readout: shapes do not match")
    m = y.shape[0]
    n_max = min(m, NOISE_ROWS) * COLS  # one block's samples, no more than the call needs
    words = np.empty(n_max // 2 if noisy else 0, dtype=np.uint64)
    half = words.view(np.uint32)
    e = np.empty(n_max if noisy and has_sat else 0, dtype=np.float32)  # the one-pass read-out needs no array
    mean = np.zeros(COLS, dtype=np.float64)
    for blk in range(b0, b1):
        r0, r1, n = _block(blk, m)
        if noisy:
            sfc64_fill(seeds[blk], words[:n // 2])
        if noisy and not has_sat:  # one pass: the normals and the results
            for i in range(r0, r1):
                y_i, out_i, s = y[i], out[i], (i - r0) * COLS
                if round_down:
                    for c0 in range(0, COLS, GAUSS_GROUP):
                        _gauss_chunk_floor(y_i, off, half, s + c0, std, lo, hi, out_i, c0)
                else:
                    for c0 in range(0, COLS, GAUSS_GROUP):
                        _gauss_chunk_rint(y_i, off, half, s + c0, std, lo, hi, out_i, c0)
            continue
        if noisy:
            normals(half[:n], e[:n])
        for i in range(r0, r1):
            y_i, out_i, e_i = y[i], out[i], e[(i - r0) * COLS:(i - r0 + 1) * COLS]
            for c in range(COLS):
                mean[c] = np.float64(y_i[c] + off[c])
            if has_sat:  # a loop of its own: the others vectorize
                for c in range(COLS):
                    mean[c] = soft_saturate(mean[c], sat[0, c], sat[1, c], sat[2, c], sat[3, c])
            if noisy:
                for c in range(COLS):
                    z = np.float32(mean[c]) + std[c] * e_i[c]
                    v = np.floor(z) if round_down else np.rint(z)
                    out_i[c] = np.int8(min(max(v, lo[c]), hi[c]))
            else:
                for c in range(COLS):
                    v = np.floor(mean[c]) if round_down else np.rint(mean[c])
                    out_i[c] = np.int8(min(max(v, lo[c]), hi[c]))


@njit(nogil=True, cache=True)
def normals(half, e):
    """``e`` (float32) = the Box-Muller normals of the 32-bit words ``half`` (contiguous, a multiple of 32 of them).

    What :func:`chipsim.noise.gauss_normals` computes from the same words.
    """
    n = half.size
    if e.size != n or n % GAUSS_GROUP or half.strides[0] != 4 or e.strides[0] != 4:
        raise ValueError("normals: needs contiguous buffers of one size, a multiple of 32")
    for s0 in range(0, n, GAUSS_GROUP):
        _normals(half, e, s0)
