/* Seeded synthetic CSVs for bench/bench_ml.sh (splitmix64 + Box-Muller; the
 * same arguments give the same bytes).
 *   gen_ml_data clean ROWS SEED > clean.csv   ROWS x 20: 18 numbers (5% empty),
 *       an integer column and a category column (60 values, skewed); 2% of the
 *       rows repeat an earlier row (for --dedup).
 *   gen_ml_data train ROWS SEED > train.csv   ROWS x 32 features + target (0/1):
 *       x_j ~ N(j%3, 1+j%5), y = 1 with probability sigmoid(b + w.x_std). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t st;
static uint64_t next(void)
{
    uint64_t z = (st += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double unif(void) { return (double)(next() >> 11) * 0x1.0p-53; }
static double gauss(void)
{
    double u = unif(), v = unif();
    return sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: gen_ml_data clean|train ROWS SEED\n");
        return 2;
    }
    long rows = atol(argv[2]);
    st = strtoull(argv[3], NULL, 10);
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    if (!strcmp(argv[1], "clean")) {
        enum { NUM = 18 };
        char (*prev)[NUM + 2][32] = malloc(sizeof(*prev) * 1024); /* a ring of recent rows */
        for (int j = 0; j < NUM; j++)
            printf("x%d,", j);
        printf("n,cat\n");
        for (long r = 0; r < rows; r++) {
            char row[NUM + 2][32];
            if (r > 1024 && unif() < 0.02) {
                memcpy(row, prev[next() % 1024], sizeof row);
            } else {
                for (int j = 0; j < NUM; j++) {
                    if (unif() < 0.05)
                        row[j][0] = 0;
                    else
                        snprintf(row[j], 32, "%.6f", 50 + 10 * (1 + j % 4) * gauss());
                }
                snprintf(row[NUM], 32, "%ld", (long)(next() % 1000));
                double u = unif();
                if (u < 0.03)
                    row[NUM + 1][0] = 0;
                else
                    snprintf(row[NUM + 1], 32, "v%02d", (int)(60 * u * u * u));
            }
            memcpy(prev[r % 1024], row, sizeof row);
            for (int j = 0; j < NUM + 2; j++) {
                fputs(row[j], stdout);
                putchar(j == NUM + 1 ? '\n' : ',');
            }
        }
        free(prev);
    } else {
        enum { D = 32 };
        double w[D], b = 0.3 * gauss();
        for (int j = 0; j < D; j++)
            w[j] = gauss();
        for (int j = 0; j < D; j++)
            printf("f%d,", j);
        printf("target\n");
        for (long r = 0; r < rows; r++) {
            double z = b;
            for (int j = 0; j < D; j++) {
                double g = gauss();
                z += w[j] * g;
                printf("%.6f,", (j % 3) + (1 + j % 5) * g);
            }
            printf("%d\n", unif() < 1 / (1 + exp(-z)));
        }
    }
    return fflush(stdout) != 0;
}
