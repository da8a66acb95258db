// Fused CUDA kernels of pixelgen-diffusion (feature `cuda`), compiled to PTX by build.rs and
// loaded at run time by src/fused/cuda.rs. Each kernel replaces a chain of candle ops that
// would otherwise make several full passes over large activations:
//
//   gn_stats_* + gn_apply_*   group norm (+ optional SiLU) on NCHW: per-(batch, group) mean and
//                             variance by Welford/Chan in f32, then normalise, scale, shift and
//                             activate in one pass (candle: ~10 passes, in f32); the *_vec_*
//                             variants move 16 bytes per load and store.
//   geglu_*                   a * gelu_erf(gate) over the two halves of the last dimension.
//   token_stats_* + token_affine_*
//                             AdaIN of [n, L, C] token-major activations (reference attention):
//                             per (item, channel) mean and sd over the tokens by Welford/Chan in
//                             f32, then one scale and shift per (item, channel) in one pass.
//   flash_attn_d64_*          softmax(Q K^T * scale) V for head dim 64 without materialising the
//                             scores: tiles of 64 queries x 64 keys, tensor cores (WMMA, f32
//                             accumulate), online softmax in f32 (Dao et al., FlashAttention-2).
//
//   flash_attn_d64_mma_*      the same with mma.sync (m16n8k16) and register-resident S, P and O
//                             (FlashAttention-2's layout: the score accumulators are re-packed as
//                             the A operand of P V, rows rescaled in registers).
//   flash_attn_d64_mma_shared_*
//                             the same for reference attention: each item also attends to its
//                             group's first item's K/V, read in place (no gathered copies), with
//                             ln(strength) added to those logits.
//   pad_nhwc_* + crop_bias_*  3x3 stride-1 convolutions as nine shifted GEMMs: the input goes to a
//                             zero-bordered NHWC copy, where every tap's pixel rows are one
//                             uniformly strided matrix (on the padded width), the nine products
//                             accumulate in one NCHW buffer of padded width, then the two junk
//                             columns per row are cropped and the bias added in one pass.
//   im2col_*                  the columns of a convolution as [batch, pixels, cin * kh * kw] for a
//                             range of output pixels, transposed through shared memory so reads
//                             and writes are coalesced; one GEMM per image then writes NCHW.
//
// Types: f32, f16 and bf16 (flash attention: f16 and bf16). Reductions and softmax run in f32.

#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <mma.h>

using namespace nvcuda;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}

// ---------------------------------------------------------------------------------------------
// Group norm

// Running statistics of a set of values: count, mean, sum of squared deviations.
struct Stat {
    float n;
    float mean;
    float m2;
};

// Chan et al.'s parallel combination of two sets' statistics.
__device__ __forceinline__ Stat combine(Stat a, Stat b) {
    float n = a.n + b.n;
    if (n == 0.f) return a;
    float d = b.mean - a.mean;
    float f = b.n / n;
    Stat r;
    r.n = n;
    r.mean = a.mean + d * f;
    r.m2 = a.m2 + b.m2 + d * d * a.n * f;
    return r;
}

__device__ __forceinline__ Stat warp_combine(Stat s) {
    for (int o = 16; o > 0; o >>= 1) {
        Stat t;
        t.n = __shfl_xor_sync(0xffffffffu, s.n, o);
        t.mean = __shfl_xor_sync(0xffffffffu, s.mean, o);
        t.m2 = __shfl_xor_sync(0xffffffffu, s.m2, o);
        s = combine(s, t);
    }
    return s;
}

// Combines the block's per-thread statistics and writes them (n, mean, m2) to out[0..3].
__device__ __forceinline__ void block_stat_write(Stat s, float *out) {
    s = warp_combine(s);
    __shared__ Stat warps[32];
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    if (l == 0) warps[w] = s;
    __syncthreads();
    if (w == 0) {
        const int nw = blockDim.x / 32;
        Stat t = {0.f, 0.f, 0.f};
        if (l < nw) t = warps[l];
        t = warp_combine(t);
        if (l == 0) {
            out[0] = t.n;
            out[1] = t.mean;
            out[2] = t.m2;
        }
    }
}

// grid (parts, batch * groups), block 256: statistics of one part of one group's contiguous
// `group_len` values, written to part[(bg * parts + p) * 3 ..].
template <typename T>
__device__ void gn_stats(const T *x, float *part, long group_len, int parts) {
    const int p = blockIdx.x;
    const long bg = blockIdx.y;
    const long chunk = (group_len + parts - 1) / parts;
    const long start = p * chunk;
    const long end = min(start + chunk, group_len);
    const T *base = x + bg * group_len;
    Stat s = {0.f, 0.f, 0.f};
    for (long i = start + threadIdx.x; i < end; i += blockDim.x) {
        float v = to_f(base[i]);
        s.n += 1.f;
        float d = v - s.mean;
        s.mean += d / s.n;
        s.m2 += d * (v - s.mean);
    }
    block_stat_write(s, part + (bg * parts + p) * 3);
}

// Vectorised gn_stats: 16-byte loads (8 halves or 4 floats), each vector's own mean and
// squared deviations first, so one Chan combination per vector instead of a division per
// value. Needs group_len % V == 0 and x 16-byte aligned (the host checks).
template <typename T>
__device__ void gn_stats_vec(const T *x, float *part, long group_len, int parts) {
    constexpr int V = 16 / sizeof(T);
    const int p = blockIdx.x;
    const long bg = blockIdx.y;
    const long nvec = group_len / V;
    const long chunk = (nvec + parts - 1) / parts;
    const long start = p * chunk;
    const long end = min(start + chunk, nvec);
    const uint4 *base = reinterpret_cast<const uint4 *>(x + bg * group_len);
    Stat s = {0.f, 0.f, 0.f};
    for (long i = start + threadIdx.x; i < end; i += blockDim.x) {
        const uint4 raw = base[i];
        const T *v = reinterpret_cast<const T *>(&raw);
        float f[V];
        float sum = 0.f;
#pragma unroll
        for (int k = 0; k < V; ++k) {
            f[k] = to_f(v[k]);
            sum += f[k];
        }
        const float m = sum * (1.f / V);
        float m2 = 0.f;
#pragma unroll
        for (int k = 0; k < V; ++k) m2 += (f[k] - m) * (f[k] - m);
        const Stat t = {(float)V, m, m2};
        s = combine(s, t);
    }
    block_stat_write(s, part + (bg * parts + p) * 3);
}

// The mean and 1/std of one group from its `parts` partial statistics, for every thread of
// the block (thread 0 combines them).
__device__ __forceinline__ void group_stats(const float *part, int parts, float eps, float &mean,
                                            float &rstd) {
    __shared__ float stats[2];
    if (threadIdx.x == 0) {
        Stat s = {0.f, 0.f, 0.f};
        for (int p = 0; p < parts; ++p) {
            const float *q = part + p * 3;
            Stat t = {q[0], q[1], q[2]};
            s = combine(s, t);
        }
        stats[0] = s.mean;
        stats[1] = rsqrtf(s.m2 / fmaxf(s.n, 1.f) + eps);
    }
    __syncthreads();
    mean = stats[0];
    rstd = stats[1];
}

// grid (blocks per group, batch * groups), block 256: y = (x - mean) * rstd * w[c] + b[c],
// then SiLU when `silu` is set. x and y are NCHW contiguous; a group is `cpg` channels of `hw`.
template <typename T>
__device__ void gn_apply(const T *x, const float *part, const T *w, const T *b, T *y,
                         long group_len, int parts, long hw, int cpg, int groups, float eps,
                         int silu) {
    const long bg = blockIdx.y;
    const int g = (int)(bg % groups);
    float mean, rstd;
    group_stats(part + bg * parts * 3, parts, eps, mean, rstd);
    const long chunk = (group_len + gridDim.x - 1) / gridDim.x;
    const long start = blockIdx.x * chunk;
    const long end = min(start + chunk, group_len);
    const long off = bg * group_len;
    for (long i = start + threadIdx.x; i < end; i += blockDim.x) {
        const int c = g * cpg + (int)(i / hw);
        float v = (to_f(x[off + i]) - mean) * rstd * to_f(w[c]) + to_f(b[c]);
        if (silu) v = v / (1.f + __expf(-v));
        y[off + i] = from_f<T>(v);
    }
}

// Vectorised gn_apply: 16-byte loads and stores, one channel lookup per vector, the affine
// folded into one scale and shift. Needs hw % V == 0 (a vector never straddles channels),
// group_len < 2^31 and x, y 16-byte aligned (the host checks).
template <typename T>
__device__ void gn_apply_vec(const T *x, const float *part, const T *w, const T *b, T *y,
                             long group_len, int parts, long hw, int cpg, int groups, float eps,
                             int silu) {
    constexpr int V = 16 / sizeof(T);
    const long bg = blockIdx.y;
    const int g = (int)(bg % groups);
    float mean, rstd;
    group_stats(part + bg * parts * 3, parts, eps, mean, rstd);
    const long nvec = group_len / V;
    const long chunk = (nvec + gridDim.x - 1) / gridDim.x;
    const long start = blockIdx.x * chunk;
    const long end = min(start + chunk, nvec);
    const uint4 *xin = reinterpret_cast<const uint4 *>(x + bg * group_len);
    uint4 *yout = reinterpret_cast<uint4 *>(y + bg * group_len);
    const unsigned hwu = (unsigned)hw;
    for (long i = start + threadIdx.x; i < end; i += blockDim.x) {
        const int c = g * cpg + (int)((unsigned)(i * V) / hwu);
        const float sc = rstd * to_f(w[c]);
        const float sh = to_f(b[c]) - mean * sc;
        const uint4 raw = xin[i];
        const T *v = reinterpret_cast<const T *>(&raw);
        uint4 packed;
        T *o = reinterpret_cast<T *>(&packed);
#pragma unroll
        for (int k = 0; k < V; ++k) {
            float t = to_f(v[k]) * sc + sh;
            if (silu) t = t / (1.f + __expf(-t));
            o[k] = from_f<T>(t);
        }
        yout[i] = packed;
    }
}

// ---------------------------------------------------------------------------------------------
// GEGLU: out[r, i] = h[r, i] * gelu_erf(h[r, inner + i]) for h of shape [rows, 2 * inner].

template <typename T>
__device__ void geglu(const T *h, T *out, long rows, long inner) {
    const long n = rows * inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        const long r = i / inner, c = i - r * inner;
        const float a = to_f(h[r * 2 * inner + c]);
        const float g = to_f(h[r * 2 * inner + inner + c]);
        out[i] = from_f<T>(a * 0.5f * g * (1.f + erff(g * 0.70710678118654752f)));
    }
}

// Vectorised geglu: 16-byte loads of both halves and 16-byte stores. Needs inner % V == 0 and
// h 16-byte aligned (the host checks).
template <typename T>
__device__ void geglu_vec(const T *h, T *out, long rows, long inner) {
    constexpr int V = 16 / sizeof(T);
    const long iv = inner / V;
    const long n = rows * iv;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        const long r = i / iv, c = i - r * iv;
        const uint4 *row = reinterpret_cast<const uint4 *>(h + r * 2 * inner);
        const uint4 ra = row[c], rg = row[iv + c];
        const T *a = reinterpret_cast<const T *>(&ra);
        const T *g = reinterpret_cast<const T *>(&rg);
        uint4 packed;
        T *o = reinterpret_cast<T *>(&packed);
#pragma unroll
        for (int k = 0; k < V; ++k) {
            const float gv = to_f(g[k]);
            o[k] = from_f<T>(to_f(a[k]) * 0.5f * gv * (1.f + erff(gv * 0.70710678118654752f)));
        }
        reinterpret_cast<uint4 *>(out)[i] = packed;
    }
}

// ---------------------------------------------------------------------------------------------
// im2col, pixel-major: col[b, p, r] = x[b, ci, oy * stride - pad + ky, ox * stride - pad + kx]
// with r = (ci * kh + ky) * kw + kx, for output pixels p0 + p (p < np, oy = (p0 + p) / wo,
// ox = (p0 + p) % wo), zero outside the image. r is contiguous, so one cuBLASLt "TN" GEMM per
// image (the layout cuBLAS is fastest at) writes out[b, cout, p] = w[cout, K] . col[b, p, K]
// in NCHW. A 32 x 32 tile goes through shared memory so that both the reads (along pixels) and
// the writes (along r) are coalesced. grid (ceil(np / 32), ceil(K / 32), batch), block (32, 8).

template <typename T>
__device__ void im2col(const T *x, T *col, int cin, int h, int w, int kh, int kw, int stride,
                       int pad, int wo, int p0, int np) {
    __shared__ T tile[32][33];
    const int k_total = cin * kh * kw;
    const int b = blockIdx.z;
    const int pt = blockIdx.x * 32, rt = blockIdx.y * 32;
    const T *xb = x + (long)b * cin * h * w;
    // Read: thread (tx, ty) loads pixel pt + tx of rows rt + ty + 8 i.
    const int p = pt + threadIdx.x;
    int oy = 0, ox = 0;
    if (p < np) {
        const int pp = p0 + p;
        oy = pp / wo;
        ox = pp - oy * wo;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int r = rt + threadIdx.y + 8 * i;
        T v = from_f<T>(0.f);
        if (p < np && r < k_total) {
            const int ci = r / (kh * kw), kk = r - ci * kh * kw;
            const int ky = kk / kw, kx = kk - ky * kw;
            const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
            if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = xb[((long)ci * h + iy) * w + ix];
        }
        tile[threadIdx.y + 8 * i][threadIdx.x] = v;
    }
    __syncthreads();
    // Write: thread (tx, ty) stores row rt + tx of pixels pt + ty + 8 i.
    const int r = rt + threadIdx.x;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int pw = pt + threadIdx.y + 8 * i;
        if (pw < np && r < k_total)
            col[((long)b * np + pw) * k_total + r] = tile[threadIdx.x][threadIdx.y + 8 * i];
    }
}

// ---------------------------------------------------------------------------------------------
// Shifted-GEMM convolution helpers.

// xp[b, y + 1, x + 1, c] = x[b, c, y, x] (xp zeroed by the caller). grid (ceil(h * w / 32),
// ceil(cin / 32), batch), block (32, 8): a 32-channel x 32-pixel tile through shared memory.
template <typename T>
__device__ void pad_nhwc(const T *x, T *xp, int cin, int h, int w) {
    __shared__ T tile[32][34];
    const int b = blockIdx.z;
    const int pt = blockIdx.x * 32, ct = blockIdx.y * 32;
    const int hw = h * w;
    const T *xb = x + (long)b * cin * hw;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int c = ct + threadIdx.y + 8 * i, p = pt + threadIdx.x;
        tile[threadIdx.y + 8 * i][threadIdx.x] =
            (c < cin && p < hw) ? xb[(long)c * hw + p] : from_f<T>(0.f);
    }
    __syncthreads();
    T *xpb = xp + (long)b * (h + 2) * (w + 2) * cin;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int p = pt + threadIdx.y + 8 * i, c = ct + threadIdx.x;
        if (p < hw && c < cin) {
            const int y = p / w, xx = p - y * w;
            xpb[((long)(y + 1) * (w + 2) + xx + 1) * cin + c] = tile[threadIdx.x][threadIdx.y + 8 * i];
        }
    }
}

// out[b, c, y, x] = dpad[b, c, y * (w + 2) + x] + bias[c] (bias may be absent).
template <typename T>
__device__ void crop_bias(const T *dpad, const T *bias, T *out, int batch, int cout, int h,
                          int w, int has_bias) {
    const long n = (long)batch * cout * h * w;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        const long row = i / w;  // (b * cout + c) * h + y
        const int xx = (int)(i - row * w);
        const long bc = row / h;
        const int y = (int)(row - bc * h);
        const int c = (int)(bc % cout);
        float v = to_f(dpad[(bc * h + y) * (long)(w + 2) + xx]);
        if (has_bias) v += to_f(bias[c]);
        out[i] = from_f<T>(v);
    }
}

// ---------------------------------------------------------------------------------------------
// Flash attention, head dim 64.
//
// q [B, Lq, H * 64], k and v [B, Lk, H * 64] (token stride and batch stride given, so views
// into a fused QKV projection work), out [B, Lq, H * 64] contiguous. grid (ceil(Lq / 64), B * H),
// block 128 = 4 warps; each warp owns 16 query rows. Per 64-key tile: S = Q K^T on tensor cores
// into shared memory, online softmax by the warp's threads (each owns one row and every other
// column), P (f16/bf16) back through shared memory, O += P V on tensor cores.

constexpr int FA_D = 64;
constexpr int FA_BR = 64;
constexpr int FA_BC = 64;
constexpr int FA_LDH = 72;  // padded row of a half tile (bank conflicts)
constexpr int FA_LDS = 68;  // padded row of the f32 score tile

// Rows r0 .. r0 + 63 (zeros from row n on) of a [rows, 64] matrix with row stride ts into a
// padded shared tile, 16 bytes per thread per step (128 threads).
template <typename T>
__device__ __forceinline__ void load_tile64(T *dst, const T *src, int r0, int n, long ts, int tid) {
    for (int i = tid; i < 64 * 8; i += 128) {
        const int r = i / 8, c8 = i % 8;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (r0 + r < n) val = *reinterpret_cast<const uint4 *>(src + (long)(r0 + r) * ts + c8 * 8);
        *reinterpret_cast<uint4 *>(&dst[r * FA_LDH + c8 * 8]) = val;
    }
}

template <typename T>
__device__ void flash_attn_d64(const T *__restrict__ q, const T *__restrict__ k,
                               const T *__restrict__ v, T *__restrict__ out, int lq, int lk,
                               int heads, long q_bs, long q_ts, long k_bs, long k_ts, long v_bs,
                               long v_ts, float scale_log2) {
    __shared__ __align__(128) T qs[FA_BR * FA_LDH];
    __shared__ __align__(128) T ks[FA_BC * FA_LDH];
    __shared__ __align__(128) T vs[FA_BC * FA_LDH];
    __shared__ __align__(128) float ss[4][16 * FA_LDS];

    const int bh = blockIdx.y;
    const int b = bh / heads, h = bh % heads;
    const int q0 = blockIdx.x * FA_BR;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const T *qb = q + b * q_bs + h * FA_D;
    const T *kb = k + b * k_bs + h * FA_D;
    const T *vb = v + b * v_bs + h * FA_D;

    // Q tile: 64 rows x 8 vectors of 8 elements (16 bytes).
    load_tile64(qs, qb, q0, lq, q_ts, tid);
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qf[4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wmma::load_matrix_sync(qf[kk], qs + warp * 16 * FA_LDH + kk * 16, FA_LDH);

    float *s_tile = ss[warp];
    T *p_tile = reinterpret_cast<T *>(s_tile);  // 16 x FA_LDH halves fit in the score tile
    const int row = lane >> 1, odd = lane & 1;
    float m = -INFINITY, l = 0.f;
    float acc[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) acc[j] = 0.f;

    for (int kt = 0; kt < lk; kt += FA_BC) {
        __syncthreads();  // everyone is done with the previous K/V tile
        load_tile64(ks, kb, kt, lk, k_ts, tid);
        load_tile64(vs, vb, kt, lk, v_ts, tid);
        __syncthreads();

        // S = Q K^T (16 x 64 per warp).
#pragma unroll
        for (int n = 0; n < 4; ++n) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> sacc;
            wmma::fill_fragment(sacc, 0.f);
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, ks + n * 16 * FA_LDH + kk * 16, FA_LDH);
                wmma::mma_sync(sacc, qf[kk], kf, sacc);
            }
            wmma::store_matrix_sync(s_tile + n * 16, sacc, FA_LDS, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax over this tile; the thread owns columns 2j + odd of its row.
        float sv[32];
        float mt = -INFINITY;
        const int valid = lk - kt;
#pragma unroll
        for (int j = 0; j < 32; ++j) {
            const int c = 2 * j + odd;
            const float x = c < valid ? s_tile[row * FA_LDS + c] * scale_log2 : -INFINITY;
            sv[j] = x;
            mt = fmaxf(mt, x);
        }
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
        const float m_new = fmaxf(m, mt);
        const float alpha = exp2f(m - m_new);
        float ls = 0.f;
#pragma unroll
        for (int j = 0; j < 32; ++j) {
            sv[j] = exp2f(sv[j] - m_new);
            ls += sv[j];
        }
        ls += __shfl_xor_sync(0xffffffffu, ls, 1);
        l = l * alpha + ls;
        m = m_new;
#pragma unroll
        for (int j = 0; j < 32; ++j) acc[j] *= alpha;
        __syncwarp();
#pragma unroll
        for (int j = 0; j < 32; ++j) p_tile[row * FA_LDH + 2 * j + odd] = from_f<T>(sv[j]);
        __syncwarp();

        // O_tile = P V (16 x 64 per warp), added to the running output through shared memory.
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> of[4];
#pragma unroll
        for (int n = 0; n < 4; ++n) wmma::fill_fragment(of[n], 0.f);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pf;
            wmma::load_matrix_sync(pf, p_tile + kk * 16, FA_LDH);
#pragma unroll
            for (int n = 0; n < 4; ++n) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vf;
                wmma::load_matrix_sync(vf, vs + kk * 16 * FA_LDH + n * 16, FA_LDH);
                wmma::mma_sync(of[n], pf, vf, of[n]);
            }
        }
        __syncwarp();
#pragma unroll
        for (int n = 0; n < 4; ++n)
            wmma::store_matrix_sync(s_tile + n * 16, of[n], FA_LDS, wmma::mem_row_major);
        __syncwarp();
#pragma unroll
        for (int j = 0; j < 32; ++j) acc[j] += s_tile[row * FA_LDS + 2 * j + odd];
        __syncwarp();
    }

    const int qr = q0 + warp * 16 + row;
    if (qr < lq) {
        const float inv = 1.f / l;
        T *o = out + ((long)b * lq + qr) * (long)heads * FA_D + h * FA_D;
#pragma unroll
        for (int j = 0; j < 32; ++j) o[2 * j + odd] = from_f<T>(acc[j] * inv);
    }
}

// ---------------------------------------------------------------------------------------------
// Flash attention, head dim 64, with mma.sync.m16n8k16 (f32 accumulate).
//
// Same interface and tiling as flash_attn_d64 (64 queries per block, 4 warps of 16 rows,
// 64-key tiles), but the warp's scores, probabilities and output stay in registers. Fragment
// layouts (PTX ISA, mma.m16n8k16, g = lane / 4, t = lane % 4): A holds rows g and g + 8, columns
// 2t, 2t + 1 (+ 8); B holds k rows 2t, 2t + 1 (+ 8) of column g; C holds rows g and g + 8,
// columns 2t, 2t + 1. So a thread owns two rows of S and O, and S's accumulators of two
// adjacent 8-key tiles form exactly the A fragment of P for the P V product.

template <typename T> struct MmaOps;

template <> struct MmaOps<__half> {
    static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4],
                                               unsigned b0, unsigned b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ unsigned pack(float lo, float hi) {
        __half2 h = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<unsigned *>(&h);
    }
};

template <> struct MmaOps<__nv_bfloat16> {
    static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4],
                                               unsigned b0, unsigned b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ unsigned pack(float lo, float hi) {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<unsigned *>(&h);
    }
};

template <typename T> __device__ __forceinline__ unsigned ld32(const T *p) {
    return *reinterpret_cast<const unsigned *>(p);
}

// 16-byte asynchronous global -> shared copy; `valid == false` writes zeros (source size 0).
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }

template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8x8 b16 matrices from shared memory; lane l gives the address of row l % 8 of matrix
// l / 8, and receives (row l / 4, columns 2 (l % 4) + {0, 1}) of each (transposed: row and
// column swapped), i.e. mma B fragments.
__device__ __forceinline__ void ldsm_x4(unsigned (&r)[4], const void *p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_trans(unsigned (&r)[4], const void *p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

template <typename T>
__device__ void flash_attn_d64_mma(const T *__restrict__ q, const T *__restrict__ k,
                                   const T *__restrict__ v, T *__restrict__ out, int lq, int lk,
                                   int heads, long q_bs, long q_ts, long k_bs, long k_ts,
                                   long v_bs, long v_ts, float scale_log2, int group,
                                   float ref_bias_log2) {
    __shared__ __align__(128) T qs[FA_BR * FA_LDH];
    __shared__ __align__(128) T kbuf[2][FA_BC * FA_LDH];
    __shared__ __align__(128) T vbuf[2][FA_BC * FA_LDH];
    using Ops = MmaOps<T>;

    const int bh = blockIdx.y;
    const int b = bh / heads, h = bh % heads;
    const int q0 = blockIdx.x * FA_BR;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = lane >> 2, t = lane & 3;
    const T *qb = q + b * q_bs + h * FA_D;
    const T *kb = k + b * k_bs + h * FA_D;
    const T *vb = v + b * v_bs + h * FA_D;
    // Reference attention (group > 0): an item that is not its group's first also attends to
    // the first item's keys and values, read in place before its own, their logits shifted
    // by ref_bias_log2 (ln(strength) in log2 units). lk is a multiple of FA_BC then (the host
    // checks), so no tile straddles the two parts. The first item attends to itself only.
    const int rb = group > 0 ? (b / group) * group : b;
    const int lr = rb != b ? lk : 0;
    const T *krb = k + (long)rb * k_bs + h * FA_D;
    const T *vrb = v + (long)rb * v_bs + h * FA_D;
    const int ltot = lr + lk;

    load_tile64(qs, qb, q0, lq, q_ts, tid);
    __syncthreads();
    unsigned qa[4][4];
    const T *qw = qs + warp * 16 * FA_LDH;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        qa[kk][0] = ld32(qw + g * FA_LDH + kk * 16 + 2 * t);
        qa[kk][1] = ld32(qw + (g + 8) * FA_LDH + kk * 16 + 2 * t);
        qa[kk][2] = ld32(qw + g * FA_LDH + kk * 16 + 8 + 2 * t);
        qa[kk][3] = ld32(qw + (g + 8) * FA_LDH + kk * 16 + 8 + 2 * t);
    }

    float o[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

    // K/V tiles are double-buffered: the next tile's cp.async copies run while this one is
    // multiplied (rows past lk are zero-filled by a zero source size).
    auto load_tile = [&](int kt, int buf) {
        const bool in_ref = kt < lr;
        const T *kx = in_ref ? krb : kb;
        const T *vx = in_ref ? vrb : vb;
        const int k0 = in_ref ? kt : kt - lr;
        for (int i = tid; i < FA_BC * 8; i += 128) {
            const int r = i / 8, c8 = i % 8;
            const bool ok = k0 + r < lk;
            const long row = ok ? (long)(k0 + r) : 0;
            cp_async16(&kbuf[buf][r * FA_LDH + c8 * 8], kx + row * k_ts + c8 * 8, ok);
            cp_async16(&vbuf[buf][r * FA_LDH + c8 * 8], vx + row * v_ts + c8 * 8, ok);
        }
        cp_async_commit();
    };
    load_tile(0, 0);
    int buf = 0;
    for (int kt = 0; kt < ltot; kt += FA_BC, buf ^= 1) {
        if (kt + FA_BC < ltot) {
            load_tile(kt + FA_BC, buf ^ 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const T *ks = kbuf[buf];
        const T *vs = vbuf[buf];

        // S = Q K^T: K fragments by ldmatrix (matrices: keys n*8.., dims 16 kk + 8 m).
        float s[8][4];
        const int lrow = lane & 7, lmat = lane >> 3;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
            for (int kk2 = 0; kk2 < 2; ++kk2) {
                unsigned r[4];
                ldsm_x4(r, ks + (n * 8 + lrow) * FA_LDH + kk2 * 32 + lmat * 8);
                Ops::mma(s[n], qa[2 * kk2], r[0], r[1]);
                Ops::mma(s[n], qa[2 * kk2 + 1], r[2], r[3]);
            }
        }

        const int valid = kt < lr ? lr - kt : ltot - kt;
        const float shift = kt < lr ? ref_bias_log2 : 0.f;
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const bool ok = n * 8 + 2 * t + e < valid;
                s[n][e] = ok ? s[n][e] * scale_log2 + shift : -INFINITY;
                s[n][2 + e] = ok ? s[n][2 + e] * scale_log2 + shift : -INFINITY;
                mx0 = fmaxf(mx0, s[n][e]);
                mx1 = fmaxf(mx1, s[n][2 + e]);
            }
        }
#pragma unroll
        for (int o2 = 1; o2 < 4; o2 <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, o2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, o2));
        }
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        const float a0 = exp2f(m0 - mn0), a1 = exp2f(m1 - mn1);
        float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
            s[n][0] = exp2f(s[n][0] - mn0);
            s[n][1] = exp2f(s[n][1] - mn0);
            s[n][2] = exp2f(s[n][2] - mn1);
            s[n][3] = exp2f(s[n][3] - mn1);
            rs0 += s[n][0] + s[n][1];
            rs1 += s[n][2] + s[n][3];
        }
#pragma unroll
        for (int o2 = 1; o2 < 4; o2 <<= 1) {
            rs0 += __shfl_xor_sync(0xffffffffu, rs0, o2);
            rs1 += __shfl_xor_sync(0xffffffffu, rs1, o2);
        }
        l0 = l0 * a0 + rs0;
        l1 = l1 * a1 + rs1;
        m0 = mn0;
        m1 = mn1;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
            o[n][0] *= a0;
            o[n][1] *= a0;
            o[n][2] *= a1;
            o[n][3] *= a1;
        }

#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const unsigned pa[4] = {Ops::pack(s[2 * j][0], s[2 * j][1]),
                                    Ops::pack(s[2 * j][2], s[2 * j][3]),
                                    Ops::pack(s[2 * j + 1][0], s[2 * j + 1][1]),
                                    Ops::pack(s[2 * j + 1][2], s[2 * j + 1][3])};
            // V fragments by transposing ldmatrix (matrices: keys 16 j + 8 (m % 2), dims
            // 8 (2 n2 + m / 2)).
#pragma unroll
            for (int n2 = 0; n2 < 4; ++n2) {
                unsigned r[4];
                ldsm_x4_trans(r, vs + (j * 16 + (lmat & 1) * 8 + lrow) * FA_LDH +
                                     (2 * n2 + (lmat >> 1)) * 8);
                Ops::mma(o[2 * n2], pa, r[0], r[1]);
                Ops::mma(o[2 * n2 + 1], pa, r[2], r[3]);
            }
        }
        __syncthreads();  // this buffer is refilled two tiles from now
    }

    const float inv0 = 1.f / l0, inv1 = 1.f / l1;
    const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
#pragma unroll
    for (int n = 0; n < 8; ++n) {
        const int col = h * FA_D + n * 8 + 2 * t;
        if (r0 < lq)
            *reinterpret_cast<unsigned *>(out + ((long)b * lq + r0) * (long)heads * FA_D + col) =
                Ops::pack(o[n][0] * inv0, o[n][1] * inv0);
        if (r1 < lq)
            *reinterpret_cast<unsigned *>(out + ((long)b * lq + r1) * (long)heads * FA_D + col) =
                Ops::pack(o[n][2] * inv1, o[n][3] * inv1);
    }
}


// ---------------------------------------------------------------------------------------------
// AdaIN over tokens (reference attention): x is [n, L, C], token-major as attention keeps it.

// grid (ceil(C / 32), n), block (32, 8): thread (tx, ty) runs Welford over channel
// c = 32 * blockIdx.x + tx for tokens ty, ty + 8, ... (each warp reads 32 neighbouring channels
// of one token); the 8 lanes of a channel are combined with Chan's formula. Writes the mean to
// stats[(b * 2) * C + c] and sqrt(unbiased variance + eps) to stats[(b * 2 + 1) * C + c].
template <typename T>
__device__ void token_stats(const T *x, float *stats, long len, int channels, float eps) {
    const int c = blockIdx.x * 32 + threadIdx.x;
    const long b = blockIdx.y;
    Stat s = {0.f, 0.f, 0.f};
    if (c < channels) {
        const T *base = x + b * len * channels + c;
        for (long l = threadIdx.y; l < len; l += blockDim.y) {
            float v = to_f(base[l * channels]);
            s.n += 1.f;
            float d = v - s.mean;
            s.mean += d / s.n;
            s.m2 += d * (v - s.mean);
        }
    }
    __shared__ Stat lanes[8][32];
    lanes[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < channels) {
        Stat t = lanes[0][threadIdx.x];
        for (int k = 1; k < 8; ++k) t = combine(t, lanes[k][threadIdx.x]);
        const float var = t.n > 1.f ? t.m2 / (t.n - 1.f) : 0.f;
        stats[(b * 2) * channels + c] = t.mean;
        stats[(b * 2 + 1) * channels + c] = sqrtf(var + eps);
    }
}

// y[b, l, c] = x[b, l, c] * scale[b, c] + shift[b, c] (in f32), grid-stride over all values.
template <typename T>
__device__ void token_affine(const T *x, const float *scale, const float *shift, T *y,
                             long len, int channels, long total) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        const long c = i % channels;
        const long b = i / (len * channels);
        const long k = b * channels + c;
        y[i] = from_f<T>(to_f(x[i]) * scale[k] + shift[k]);
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points (extern "C" names the host side looks up).

#define GN_ENTRY(NAME, T)                                                                        \
    extern "C" __global__ void gn_stats_##NAME(const T *x, float *part, long group_len,         \
                                               int parts) {                                     \
        gn_stats<T>(x, part, group_len, parts);                                                 \
    }                                                                                           \
    extern "C" __global__ void gn_apply_##NAME(const T *x, const float *part, const T *w,       \
                                               const T *b, T *y, long group_len, int parts,     \
                                               long hw, int cpg, int groups, float eps,         \
                                               int silu) {                                      \
        gn_apply<T>(x, part, w, b, y, group_len, parts, hw, cpg, groups, eps, silu);            \
    }                                                                                           \
    extern "C" __global__ void gn_stats_vec_##NAME(const T *x, float *part, long group_len,     \
                                                   int parts) {                                 \
        gn_stats_vec<T>(x, part, group_len, parts);                                             \
    }                                                                                           \
    extern "C" __global__ void gn_apply_vec_##NAME(const T *x, const float *part, const T *w,   \
                                                   const T *b, T *y, long group_len, int parts, \
                                                   long hw, int cpg, int groups, float eps,     \
                                                   int silu) {                                  \
        gn_apply_vec<T>(x, part, w, b, y, group_len, parts, hw, cpg, groups, eps, silu);        \
    }                                                                                           \
    extern "C" __global__ void geglu_##NAME(const T *h, T *out, long rows, long inner) {        \
        geglu<T>(h, out, rows, inner);                                                          \
    }                                                                                           \
    extern "C" __global__ void geglu_vec_##NAME(const T *h, T *out, long rows, long inner) {    \
        geglu_vec<T>(h, out, rows, inner);                                                      \
    }                                                                                           \
    extern "C" __global__ void token_stats_##NAME(const T *x, float *stats, long len,           \
                                                  int channels, float eps) {                    \
        token_stats<T>(x, stats, len, channels, eps);                                           \
    }                                                                                           \
    extern "C" __global__ void token_affine_##NAME(const T *x, const float *scale,              \
                                                   const float *shift, T *y, long len,          \
                                                   int channels, long total) {                  \
        token_affine<T>(x, scale, shift, y, len, channels, total);                              \
    }

#define IM2COL_ENTRY(NAME, T)                                                                    \
    extern "C" __global__ void im2col_##NAME(const T *x, T *col, int cin, int h, int w, int kh, \
                                             int kw, int stride, int pad, int wo, int p0,       \
                                             int np) {                                          \
        im2col<T>(x, col, cin, h, w, kh, kw, stride, pad, wo, p0, np);                          \
    }

#define SHIFT_ENTRY(NAME, T)                                                                     \
    extern "C" __global__ void pad_nhwc_##NAME(const T *x, T *xp, int cin, int h, int w) {      \
        pad_nhwc<T>(x, xp, cin, h, w);                                                          \
    }                                                                                           \
    extern "C" __global__ void crop_bias_##NAME(const T *dpad, const T *bias, T *out,          \
                                                int batch, int cout, int h, int w,              \
                                                int has_bias) {                                 \
        crop_bias<T>(dpad, bias, out, batch, cout, h, w, has_bias);                             \
    }

SHIFT_ENTRY(f32, float)
SHIFT_ENTRY(f16, __half)
SHIFT_ENTRY(bf16, __nv_bfloat16)

IM2COL_ENTRY(f32, float)
IM2COL_ENTRY(f16, __half)
IM2COL_ENTRY(bf16, __nv_bfloat16)

GN_ENTRY(f32, float)
GN_ENTRY(f16, __half)
GN_ENTRY(bf16, __nv_bfloat16)

#define FA_ENTRY(NAME, T)                                                                        \
    extern "C" __global__ void __launch_bounds__(128)                                           \
        flash_attn_d64_##NAME(const T *q, const T *k, const T *v, T *out, int lq, int lk,       \
                              int heads, long q_bs, long q_ts, long k_bs, long k_ts, long v_bs, \
                              long v_ts, float scale_log2) {                                    \
        flash_attn_d64<T>(q, k, v, out, lq, lk, heads, q_bs, q_ts, k_bs, k_ts, v_bs, v_ts,      \
                          scale_log2);                                                          \
    }

FA_ENTRY(f16, __half)
FA_ENTRY(bf16, __nv_bfloat16)

#define FA_MMA_ENTRY(NAME, T)                                                                    \
    extern "C" __global__ void __launch_bounds__(128)                                           \
        flash_attn_d64_mma_##NAME(const T *q, const T *k, const T *v, T *out, int lq, int lk,   \
                                  int heads, long q_bs, long q_ts, long k_bs, long k_ts,        \
                                  long v_bs, long v_ts, float scale_log2) {                     \
        flash_attn_d64_mma<T>(q, k, v, out, lq, lk, heads, q_bs, q_ts, k_bs, k_ts, v_bs, v_ts,  \
                              scale_log2, 0, 0.f);                                              \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(128) flash_attn_d64_mma_shared_##NAME(         \
        const T *q, const T *k, const T *v, T *out, int lq, int lk, int heads, long q_bs,       \
        long q_ts, long k_bs, long k_ts, long v_bs, long v_ts, float scale_log2, int group,     \
        float ref_bias_log2) {                                                                  \
        flash_attn_d64_mma<T>(q, k, v, out, lq, lk, heads, q_bs, q_ts, k_bs, k_ts, v_bs, v_ts,  \
                              scale_log2, group, ref_bias_log2);                                \
    }

FA_MMA_ENTRY(f16, __half)
FA_MMA_ENTRY(bf16, __nv_bfloat16)
