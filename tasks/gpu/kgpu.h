/* kiln's CUDA paths for the ML task programs (kiln-train's objective,
 * kiln-clean's column arithmetic).  Built only when configure finds nvcc
 * (HAVE_CUDA); the CUDA runtime is linked statically, so the programs start
 * on machines without a driver, where kg_device_count says why there is no
 * GPU and the callers stay on the CPU.
 *
 * Every reduction runs on a fixed grid with a fixed partition of the rows and
 * adds its partial sums in a fixed order: a given input gives the same doubles
 * on every run and every GPU model.  They are not the CPU's doubles (another
 * summation order, CUDA's exp/log1p): docs/benchmarks.md "ML steps" states the
 * tolerance, tests/integration/gpu_ml.sh checks it. */
#ifndef KILN_KGPU_H
#define KILN_KGPU_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Visible CUDA devices; 0 with the reason in WHY ("no CUDA driver", "no
 * device", ...).  Never fails otherwise. */
int kg_device_count(char *why, size_t whylen);

/* Device 0: its name and the peak memory bandwidth in GB/s (2 x memory
 * clock x bus width, from the device attributes).  0 or -1 + ERR. */
int kg_device_info(char *name, size_t namelen, double *peak_gbs, char *err, size_t errlen);

/* --- kiln-train: the data term of the objective -------------------------- */
typedef struct kg_objective kg_objective;

/* Copies X (n*d, row-major) and Y (n) to the device.  KIND: 0 logistic
 * (Y: class index 0..k-1; k = 1 binary), 1 linear (k = 1).  NULL + ERR when
 * CUDA fails or the shape is outside what the kernel holds in registers
 * (k * ceil(d/32) <= 64, k <= 64). */
kg_objective *kg_objective_new(int kind, size_t n, size_t d, size_t k, const double *x, const double *y,
                               char *err, size_t errlen);
/* Sums over all rows: *LOSS_SUM (the loss, not averaged) and GRAD_SUM
 * (k*(d+1): per weight row d weight sums then the intercept sum), the same
 * quantities ml_objective sums before it scales and adds the penalty.
 * W: k*(d+1).  0, or -1 + ERR (the caller computes it on the CPU). */
int kg_objective_eval(kg_objective *o, const double *w, double *loss_sum, double *grad_sum, char *err, size_t errlen);
/* Milliseconds of kernel time of the last evaluation (both kernels). */
double kg_objective_last_ms(const kg_objective *o);
void kg_objective_free(kg_objective *o);

/* --- kiln-clean: one column of doubles, NaN = missing --------------------- */
/* Non-missing count, mean, sample standard deviation (n-1), min and max:
 * col_moments's numbers.  0 or -1 + ERR. */
int kg_col_moments(const double *x, size_t n, size_t *count, double *mean, double *std, double *min, double *max,
                   char *err, size_t errlen);
/* x = min(max(x, lo), hi) where x is not missing. */
int kg_col_clip(double *x, size_t n, double lo, double hi, char *err, size_t errlen);
/* x = div > 0 ? (x - off) / div : 0 where x is not missing. */
int kg_col_affine(double *x, size_t n, double off, double div, char *err, size_t errlen);

/* --- bench/bench_gpu.sh --------------------------------------------------- */
/* Times the column kernels on N device-resident doubles (REPS runs each, the
 * best) and reports bytes moved / kernel time in GB/s. */
typedef struct {
    double moments_gbs, affine_gbs, clip_gbs;
    double moments_ms, affine_ms, clip_ms;
} kg_bench_result;
int kg_bench_columns(size_t n, int reps, kg_bench_result *r, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
