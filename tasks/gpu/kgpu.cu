/* CUDA kernels behind kgpu.h.  Plain CUDA runtime, no cuBLAS: the products
 * here are matrix-vector sized (one pass over X per evaluation), where a
 * fused kernel reads X once and a library call would read it twice; and a
 * fixed partition with fixed-order sums keeps every result reproducible. */
#include "kgpu.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KG_GRID 1024                 /* blocks: fixed, so the partition of the rows is fixed */
#define KG_BLOCK 256
#define KG_WARPS (KG_BLOCK / 32)
#define KG_NWARPS ((long long)KG_GRID * KG_WARPS)
#define KG_MAXK 64                   /* weight rows the objective kernel holds */
#define KG_MAXACC 64                 /* k * ceil(d/32) gradient sums per lane */

static int fail(cudaError_t e, const char *what, char *err, size_t errlen)
{
    if (e == cudaSuccess) return 0;
    if (err && errlen) snprintf(err, errlen, "CUDA %s: %s", what, cudaGetErrorString(e));
    cudaGetLastError(); /* clear a sticky-free error so later calls start clean */
    return -1;
}

extern "C" int kg_device_count(char *why, size_t whylen)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why && whylen)
            snprintf(why, whylen, "cudaGetDeviceCount: %s%s", cudaGetErrorString(e),
                     e == cudaErrorInsufficientDriver ? " (no CUDA driver installed, or one older than this runtime)"
                                                      : "");
        cudaGetLastError();
        return 0;
    }
    if (n <= 0 && why && whylen) snprintf(why, whylen, "no CUDA device");
    return n > 0 ? n : 0;
}

extern "C" int kg_device_info(char *name, size_t namelen, double *peak_gbs, char *err, size_t errlen)
{
    cudaDeviceProp p;
    int clock_khz = 0, bus_bits = 0;
    if (fail(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties", err, errlen)) return -1;
    if (fail(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0), "memory clock", err, errlen)) return -1;
    if (fail(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0), "bus width", err, errlen)) return -1;
    if (name && namelen) snprintf(name, namelen, "%s", p.name);
    /* double data rate: two transfers per clock */
    if (peak_gbs) *peak_gbs = 2.0 * (double)clock_khz * 1e3 * ((double)bus_bits / 8.0) / 1e9;
    return 0;
}

/* ---- the objective ------------------------------------------------------ */

/* Every lane ends with the same sum, bit for bit (IEEE addition commutes, and
 * each butterfly step adds the same two values in every lane). */
__device__ __forceinline__ double warp_sum(double v)
{
    for (int m = 16; m; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}

/* One warp per contiguous range of rows (the range fixed by the warp's index
 * and n); lane j holds columns j, j+32, ...  KT/NJT > 0: the shape is a
 * compile-time constant and the sums stay in registers; 0: any shape within
 * the limits, arrays in local memory.  Writes, per warp, np gradient sums and
 * the loss sum to PART[warp * (np + 1) ...]. */
template <int KT, int NJT>
__global__ void __launch_bounds__(KG_BLOCK) obj_partial(int kind, long long n, int d, int k_rt, int nj_rt,
                                                        const double *__restrict__ X, const double *__restrict__ Y,
                                                        const double *__restrict__ W, double *__restrict__ part)
{
    const int K = KT ? KT : k_rt, NJ = NJT ? NJT : nj_rt;
    const int lane = threadIdx.x & 31;
    const long long gw = (long long)blockIdx.x * KG_WARPS + (threadIdx.x >> 5);
    const long long r0 = gw * n / KG_NWARPS, r1 = (gw + 1) * n / KG_NWARPS;
    const int np = K * (d + 1);
    double acc[KT ? KT * NJT : KG_MAXACC], bacc[KT ? KT : KG_MAXK], z[KT ? KT : KG_MAXK], xv[NJT ? NJT : KG_MAXACC];
    double loss = 0;
#pragma unroll
    for (int q = 0; q < K * NJ; q++) acc[q] = 0;
#pragma unroll
    for (int r = 0; r < K; r++) bacc[r] = 0;
    for (long long i = r0; i < r1; i++) {
        const double *xi = X + i * d;
#pragma unroll
        for (int t = 0; t < NJ; t++) {
            int j = lane + 32 * t;
            xv[t] = j < d ? __ldg(xi + j) : 0.0;
        }
#pragma unroll
        for (int r = 0; r < K; r++) {
            const double *wr = W + r * (d + 1);
            double s = 0;
#pragma unroll
            for (int t = 0; t < NJ; t++) {
                int j = lane + 32 * t;
                if (j < d) s += __ldg(wr + j) * xv[t];
            }
            z[r] = warp_sum(s) + __ldg(wr + d);
        }
        double y = __ldg(Y + i);
        if (kind == 1) {
            double e = z[0] - y;
            loss += 0.5 * e * e;
            z[0] = e;
        } else if (K == 1) {
            double zz = z[0];
            loss += (zz > 0 ? zz + log1p(exp(-zz)) : log1p(exp(zz))) - y * zz;
            z[0] = 1.0 / (1.0 + exp(-zz)) - y;
        } else {
            double mx = z[0], s = 0;
            for (int r = 1; r < K; r++) mx = z[r] > mx ? z[r] : mx;
            for (int r = 0; r < K; r++) s += exp(z[r] - mx);
            double lse = mx + log(s);
            int yi = (int)y;
            double zy = 0;
            for (int r = 0; r < K; r++) zy = r == yi ? z[r] : zy;
            loss += lse - zy;
            for (int r = 0; r < K; r++) z[r] = exp(z[r] - lse) - (r == yi ? 1.0 : 0.0);
        }
#pragma unroll
        for (int r = 0; r < K; r++) {
            bacc[r] += z[r];
#pragma unroll
            for (int t = 0; t < NJ; t++) acc[r * NJ + t] += z[r] * xv[t];
        }
    }
    double *pw = part + gw * (np + 1);
#pragma unroll
    for (int r = 0; r < K; r++) {
#pragma unroll
        for (int t = 0; t < NJ; t++) {
            int j = lane + 32 * t;
            if (j < d) pw[r * (d + 1) + j] = acc[r * NJ + t];
        }
        if (lane == 0) pw[r * (d + 1) + d] = bacc[r];
    }
    if (lane == 0) pw[np] = loss;
}

/* Block p adds column p of PART (NPARTS rows of STRIDE): strided per thread,
 * then a fixed tree in shared memory. */
__global__ void __launch_bounds__(KG_BLOCK) reduce_parts(const double *__restrict__ part, long long nparts, int stride,
                                                         double *__restrict__ out)
{
    __shared__ double sh[KG_BLOCK];
    int p = blockIdx.x;
    double s = 0;
    for (long long w = threadIdx.x; w < nparts; w += KG_BLOCK) s += part[w * stride + p];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int h = KG_BLOCK / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[p] = sh[0];
}

struct kg_objective {
    int kind;
    size_t n, d, k, nj;
    double *dx, *dy, *dw, *dpart, *dout;
    cudaEvent_t e0, e1;
    float ms;
};

extern "C" void kg_objective_free(kg_objective *o)
{
    if (!o) return;
    cudaFree(o->dx); cudaFree(o->dy); cudaFree(o->dw); cudaFree(o->dpart); cudaFree(o->dout);
    if (o->e0) cudaEventDestroy(o->e0);
    if (o->e1) cudaEventDestroy(o->e1);
    free(o);
}

extern "C" kg_objective *kg_objective_new(int kind, size_t n, size_t d, size_t k, const double *x, const double *y,
                                          char *err, size_t errlen)
{
    size_t nj = (d + 31) / 32, np = k * (d + 1);
    if (n == 0 || d == 0 || k == 0 || k > KG_MAXK || k * nj > KG_MAXACC || (kind == 1 && k != 1)) {
        snprintf(err, errlen, "shape outside the GPU kernel's limits (k=%zu, d=%zu: k*ceil(d/32) <= %d, k <= %d)", k, d,
                 KG_MAXACC, KG_MAXK);
        return NULL;
    }
    kg_objective *o = (kg_objective *)calloc(1, sizeof *o);
    if (!o) abort();
    o->kind = kind; o->n = n; o->d = d; o->k = k; o->nj = nj;
    if (fail(cudaSetDevice(0), "cudaSetDevice", err, errlen) ||
        fail(cudaMalloc((void **)&o->dx, n * d * sizeof(double)), "cudaMalloc (rows)", err, errlen) ||
        fail(cudaMalloc((void **)&o->dy, n * sizeof(double)), "cudaMalloc (targets)", err, errlen) ||
        fail(cudaMalloc((void **)&o->dw, np * sizeof(double)), "cudaMalloc", err, errlen) ||
        fail(cudaMalloc((void **)&o->dpart, (size_t)KG_NWARPS * (np + 1) * sizeof(double)), "cudaMalloc", err, errlen) ||
        fail(cudaMalloc((void **)&o->dout, (np + 1) * sizeof(double)), "cudaMalloc", err, errlen) ||
        fail(cudaMemcpy(o->dx, x, n * d * sizeof(double), cudaMemcpyHostToDevice), "copy rows", err, errlen) ||
        fail(cudaMemcpy(o->dy, y, n * sizeof(double), cudaMemcpyHostToDevice), "copy targets", err, errlen) ||
        fail(cudaEventCreate(&o->e0), "cudaEventCreate", err, errlen) ||
        fail(cudaEventCreate(&o->e1), "cudaEventCreate", err, errlen)) {
        kg_objective_free(o);
        return NULL;
    }
    return o;
}

extern "C" int kg_objective_eval(kg_objective *o, const double *w, double *loss_sum, double *grad_sum, char *err,
                                 size_t errlen)
{
    size_t np = o->k * (o->d + 1);
    double *h = (double *)malloc((np + 1) * sizeof *h);
    if (!h) abort();
    int rc = -1;
    long long n = (long long)o->n;
    int d = (int)o->d, k = (int)o->k, nj = (int)o->nj;
    if (fail(cudaMemcpy(o->dw, w, np * sizeof(double), cudaMemcpyHostToDevice), "copy weights", err, errlen)) goto out;
    cudaEventRecord(o->e0);
    if (k == 1 && nj == 1) obj_partial<1, 1><<<KG_GRID, KG_BLOCK>>>(o->kind, n, d, k, nj, o->dx, o->dy, o->dw, o->dpart);
    else if (k == 1 && nj == 2) obj_partial<1, 2><<<KG_GRID, KG_BLOCK>>>(o->kind, n, d, k, nj, o->dx, o->dy, o->dw, o->dpart);
    else if (k == 1 && nj == 3) obj_partial<1, 3><<<KG_GRID, KG_BLOCK>>>(o->kind, n, d, k, nj, o->dx, o->dy, o->dw, o->dpart);
    else if (k == 1 && nj == 4) obj_partial<1, 4><<<KG_GRID, KG_BLOCK>>>(o->kind, n, d, k, nj, o->dx, o->dy, o->dw, o->dpart);
    else obj_partial<0, 0><<<KG_GRID, KG_BLOCK>>>(o->kind, n, d, k, nj, o->dx, o->dy, o->dw, o->dpart);
    if (fail(cudaGetLastError(), "objective kernel", err, errlen)) goto out;
    reduce_parts<<<(unsigned)(np + 1), KG_BLOCK>>>(o->dpart, KG_NWARPS, (int)(np + 1), o->dout);
    if (fail(cudaGetLastError(), "reduce kernel", err, errlen)) goto out;
    cudaEventRecord(o->e1);
    if (fail(cudaMemcpy(h, o->dout, (np + 1) * sizeof(double), cudaMemcpyDeviceToHost), "copy sums", err, errlen)) goto out;
    cudaEventElapsedTime(&o->ms, o->e0, o->e1);
    memcpy(grad_sum, h, np * sizeof *h);
    *loss_sum = h[np];
    rc = 0;
out:
    free(h);
    return rc;
}

extern "C" double kg_objective_last_ms(const kg_objective *o) { return o ? (double)o->ms : 0; }

/* ---- columns ------------------------------------------------------------ */

/* Block b covers rows [b*n/G, (b+1)*n/G), its threads strided inside. */
__device__ __forceinline__ void block_range(long long n, long long *b0, long long *b1)
{
    *b0 = (long long)blockIdx.x * n / gridDim.x;
    *b1 = ((long long)blockIdx.x + 1) * n / gridDim.x;
}

/* A fixed shared-memory tree; OP 0 = sum, 1 = min, 2 = max. */
template <int OP>
__device__ __forceinline__ double block_reduce(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int h = KG_BLOCK / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) {
            double a = sh[threadIdx.x], b = sh[threadIdx.x + h];
            sh[threadIdx.x] = OP == 0 ? a + b : OP == 1 ? (b < a ? b : a) : (b > a ? b : a);
        }
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* count, sum, min, max of the non-missing values, one partial per block */
__global__ void __launch_bounds__(KG_BLOCK) col_pass1(const double *__restrict__ x, long long n, double *__restrict__ part)
{
    __shared__ double sh[KG_BLOCK];
    long long b0, b1;
    block_range(n, &b0, &b1);
    double c = 0, s = 0, mn = INFINITY, mx = -INFINITY;
    for (long long i = b0 + threadIdx.x; i < b1; i += KG_BLOCK) {
        double v = x[i];
        if (v == v) { c += 1; s += v; mn = v < mn ? v : mn; mx = v > mx ? v : mx; }
    }
    c = block_reduce<0>(c, sh);
    s = block_reduce<0>(s, sh);
    mn = block_reduce<1>(mn, sh);
    mx = block_reduce<2>(mx, sh);
    if (threadIdx.x == 0) {
        double *p = part + 4 * blockIdx.x;
        p[0] = c; p[1] = s; p[2] = mn; p[3] = mx;
    }
}

/* sum of squared deviations from MEAN */
__global__ void __launch_bounds__(KG_BLOCK) col_pass2(const double *__restrict__ x, long long n, double mean,
                                                      double *__restrict__ part)
{
    __shared__ double sh[KG_BLOCK];
    long long b0, b1;
    block_range(n, &b0, &b1);
    double s = 0;
    for (long long i = b0 + threadIdx.x; i < b1; i += KG_BLOCK) {
        double v = x[i];
        if (v == v) s += (v - mean) * (v - mean);
    }
    s = block_reduce<0>(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void col_clip(double *__restrict__ x, long long n, double lo, double hi)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        double v = x[i];
        if (v < lo) x[i] = lo;
        else if (v > hi) x[i] = hi;
    }
}

__global__ void col_affine(double *__restrict__ x, long long n, double off, double div)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        double v = x[i];
        if (v == v) x[i] = div > 0 ? (v - off) / div : 0;
    }
}

/* The moments of a device-resident column; partial sums added on the host in
 * block order. */
static int moments_dev(const double *dx, long long n, double *dpart, size_t *count, double *mean, double *sd,
                       double *mn, double *mx, char *err, size_t errlen)
{
    double h[4 * KG_GRID];
    col_pass1<<<KG_GRID, KG_BLOCK>>>(dx, n, dpart);
    if (fail(cudaGetLastError(), "moments kernel", err, errlen)) return -1;
    if (fail(cudaMemcpy(h, dpart, sizeof h, cudaMemcpyDeviceToHost), "copy moments", err, errlen)) return -1;
    double c = 0, s = 0, lo = INFINITY, hi = -INFINITY;
    for (int b = 0; b < KG_GRID; b++) {
        c += h[4 * b]; s += h[4 * b + 1];
        if (h[4 * b + 2] < lo) lo = h[4 * b + 2];
        if (h[4 * b + 3] > hi) hi = h[4 * b + 3];
    }
    *count = (size_t)c;
    *mean = *sd = *mn = *mx = NAN;
    if (!*count) return 0;
    *mean = s / c;
    col_pass2<<<KG_GRID, KG_BLOCK>>>(dx, n, *mean, dpart);
    if (fail(cudaGetLastError(), "moments kernel", err, errlen)) return -1;
    if (fail(cudaMemcpy(h, dpart, KG_GRID * sizeof(double), cudaMemcpyDeviceToHost), "copy moments", err, errlen)) return -1;
    double ss = 0;
    for (int b = 0; b < KG_GRID; b++) ss += h[b];
    *sd = *count > 1 ? sqrt(ss / (c - 1)) : 0;
    *mn = lo;
    *mx = hi;
    return 0;
}

extern "C" int kg_col_moments(const double *x, size_t n, size_t *count, double *mean, double *std, double *min,
                              double *max, char *err, size_t errlen)
{
    double *dx = NULL, *dpart = NULL;
    int rc = -1;
    if (fail(cudaMalloc((void **)&dx, (n ? n : 1) * sizeof(double)), "cudaMalloc", err, errlen) ||
        fail(cudaMalloc((void **)&dpart, 4 * KG_GRID * sizeof(double)), "cudaMalloc", err, errlen) ||
        fail(cudaMemcpy(dx, x, n * sizeof(double), cudaMemcpyHostToDevice), "copy column", err, errlen))
        goto out;
    rc = moments_dev(dx, (long long)n, dpart, count, mean, std, min, max, err, errlen);
out:
    cudaFree(dx);
    cudaFree(dpart);
    return rc;
}

static int elementwise(double *x, size_t n, int op, double a, double b, char *err, size_t errlen)
{
    double *dx = NULL;
    int rc = -1;
    if (!n) return 0;
    if (fail(cudaMalloc((void **)&dx, n * sizeof(double)), "cudaMalloc", err, errlen) ||
        fail(cudaMemcpy(dx, x, n * sizeof(double), cudaMemcpyHostToDevice), "copy column", err, errlen))
        goto out;
    if (op == 0) col_clip<<<KG_GRID, KG_BLOCK>>>(dx, (long long)n, a, b);
    else col_affine<<<KG_GRID, KG_BLOCK>>>(dx, (long long)n, a, b);
    if (fail(cudaGetLastError(), "column kernel", err, errlen) ||
        fail(cudaMemcpy(x, dx, n * sizeof(double), cudaMemcpyDeviceToHost), "copy column back", err, errlen))
        goto out;
    rc = 0;
out:
    cudaFree(dx);
    return rc;
}

extern "C" int kg_col_clip(double *x, size_t n, double lo, double hi, char *err, size_t errlen)
{
    return elementwise(x, n, 0, lo, hi, err, errlen);
}

extern "C" int kg_col_affine(double *x, size_t n, double off, double div, char *err, size_t errlen)
{
    return elementwise(x, n, 1, off, div, err, errlen);
}

/* ---- bench -------------------------------------------------------------- */

__global__ void fill_pattern(double *x, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] = i % 97 == 0 ? NAN : (double)(i % 1000) * 0.001 - 0.5;
}

extern "C" int kg_bench_columns(size_t n, int reps, kg_bench_result *r, char *err, size_t errlen)
{
    double *dx = NULL, *dpart = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = -1;
    memset(r, 0, sizeof *r);
    r->moments_ms = r->affine_ms = r->clip_ms = INFINITY;
    if (fail(cudaMalloc((void **)&dx, n * sizeof(double)), "cudaMalloc", err, errlen) ||
        fail(cudaMalloc((void **)&dpart, 4 * KG_GRID * sizeof(double)), "cudaMalloc", err, errlen) ||
        fail(cudaEventCreate(&e0), "cudaEventCreate", err, errlen) ||
        fail(cudaEventCreate(&e1), "cudaEventCreate", err, errlen))
        goto out;
    fill_pattern<<<KG_GRID, KG_BLOCK>>>(dx, (long long)n);
    for (int i = 0; i < reps + 1; i++) { /* the first round warms up and is not counted */
        float ms;
        cudaEventRecord(e0);
        col_pass1<<<KG_GRID, KG_BLOCK>>>(dx, (long long)n, dpart);
        cudaEventRecord(e1);
        if (fail(cudaEventSynchronize(e1), "moments kernel", err, errlen)) goto out;
        cudaEventElapsedTime(&ms, e0, e1);
        if (i && ms < r->moments_ms) r->moments_ms = ms;
        cudaEventRecord(e0);
        col_clip<<<KG_GRID, KG_BLOCK>>>(dx, (long long)n, -0.4, 0.4);
        cudaEventRecord(e1);
        if (fail(cudaEventSynchronize(e1), "clip kernel", err, errlen)) goto out;
        cudaEventElapsedTime(&ms, e0, e1);
        if (i && ms < r->clip_ms) r->clip_ms = ms;
        cudaEventRecord(e0);
        col_affine<<<KG_GRID, KG_BLOCK>>>(dx, (long long)n, 0.0, 1.0);
        cudaEventRecord(e1);
        if (fail(cudaEventSynchronize(e1), "affine kernel", err, errlen)) goto out;
        cudaEventElapsedTime(&ms, e0, e1);
        if (i && ms < r->affine_ms) r->affine_ms = ms;
    }
    /* bytes moved: pass 1 reads the column; clip and affine read and write it */
    r->moments_gbs = (double)n * 8 / (r->moments_ms * 1e-3) / 1e9;
    r->clip_gbs = (double)n * 16 / (r->clip_ms * 1e-3) / 1e9;
    r->affine_gbs = (double)n * 16 / (r->affine_ms * 1e-3) / 1e9;
    rc = 0;
out:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(dx);
    cudaFree(dpart);
    return rc;
}
