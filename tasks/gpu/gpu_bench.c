/* kiln-gpu-bench [ROWS]: the visible device, its peak memory bandwidth and
 * the bandwidth of kiln-clean's column kernels on ROWS device-resident
 * doubles (bench/bench_gpu.sh).  Exit 0; 3 when no GPU is visible. */
#include "kgpu.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    char why[256] = "", name[256] = "", err[256] = "";
    if (kg_device_count(why, sizeof why) == 0) {
        printf("gpu: none visible (%s)\n", why);
        return 3;
    }
    double peak = 0;
    if (kg_device_info(name, sizeof name, &peak, err, sizeof err)) { fprintf(stderr, "kiln-gpu-bench: %s\n", err); return 1; }
    printf("gpu: %s, peak memory bandwidth %.0f GB/s\n", name, peak);
    kg_bench_result r;
    if (kg_bench_columns(n, 10, &r, err, sizeof err)) { fprintf(stderr, "kiln-gpu-bench: %s\n", err); return 1; }
    printf("column kernels on %zu doubles (best of 10):\n", n);
    printf("  moments pass (read 8n B):      %8.3f ms %7.0f GB/s (%.0f%% of peak)\n", r.moments_ms, r.moments_gbs,
           100 * r.moments_gbs / peak);
    printf("  clip (read + write 16n B):     %8.3f ms %7.0f GB/s (%.0f%% of peak)\n", r.clip_ms, r.clip_gbs,
           100 * r.clip_gbs / peak);
    printf("  standardize (read + write):    %8.3f ms %7.0f GB/s (%.0f%% of peak)\n", r.affine_ms, r.affine_gbs,
           100 * r.affine_gbs / peak);
    printf("peak_gbs %.1f\n", peak);
    return 0;
}
