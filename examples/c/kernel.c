/* The NNGP and NTK of a network from C, through libntkrs.
 *
 * Build (from the repository root, after `cargo build --release -p ntkrs-capi`):
 *   shared: cc -std=c11 -Wall -I rust/capi/include examples/c/kernel.c -L target/release -lntkrs -lm \
 *              -Wl,-rpath,$PWD/target/release -o kernel
 *   static: cc -std=c11 -Wall -I rust/capi/include examples/c/kernel.c target/release/libntkrs.a \
 *              -lpthread -ldl -lm -o kernel-static
 *   with pkg-config: cc examples/c/kernel.c $(pkg-config --cflags --libs ntkrs) -o kernel
 * Run: ./kernel [SPEC]   (default "relu:3,W_std=1.5,b_std=0.1")
 *
 * Prints the ABI version, then the NNGP and NTK of 5 points in 3 dimensions (x[i][j] = sin(i + 2j)),
 * one "nngp i j value" / "ntk i j value" line per entry with 17 significant digits, then what a
 * bad call returns. Exit status 0 when everything behaved as documented.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ntkrs.h"

enum { N = 5, D = 3 };

int main(int argc, char **argv) {
    const char *spec = argc > 1 ? argv[1] : "relu:3,W_std=1.5,b_std=0.1";
    if (ntkrs_abi_version() != NTKRS_ABI_VERSION) {
        fprintf(stderr, "libntkrs has ABI %u, this program was built for %u\n", ntkrs_abi_version(), NTKRS_ABI_VERSION);
        return 1;
    }
    printf("abi %u version %s simd %s\n", ntkrs_abi_version(), ntkrs_version(), ntkrs_simd_level());

    ntkrs_network *net = NULL;
    if (ntkrs_network_from_spec(spec, &net) != NTKRS_OK) {
        fprintf(stderr, "bad spec: %s\n", ntkrs_last_error());
        return 1;
    }
    double x[N * D], nngp[N * N], ntk[N * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = sin(i + 2.0 * j);

    int rc = ntkrs_kernel_f64(net, x, N, NULL, 0, D, nngp, ntk);
    if (rc != NTKRS_OK) {
        fprintf(stderr, "ntkrs_kernel_f64 failed (%d): %s\n", rc, ntkrs_last_error());
        return 1;
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            printf("nngp %d %d %.17g\n", i, j, nngp[i * N + j]);
            printf("ntk %d %d %.17g\n", i, j, ntk[i * N + j]);
            if (nngp[i * N + j] != nngp[j * N + i]) return 2; /* exactly symmetric */
        }

    /* bad input is an error code and a message, never a crash */
    x[4] = NAN;
    rc = ntkrs_kernel_f64(net, x, N, NULL, 0, D, nngp, NULL);
    printf("nan %d %s\n", rc, ntkrs_last_error());
    if (rc != NTKRS_ERR_ARGUMENT) return 3;
    rc = ntkrs_kernel_f64(net, NULL, N, NULL, 0, D, nngp, NULL);
    printf("null %d %s\n", rc, ntkrs_last_error());
    if (rc != NTKRS_ERR_NULL) return 4;
    ntkrs_network *bad = NULL;
    rc = ntkrs_network_from_spec("relu:x", &bad);
    printf("spec %d %s\n", rc, ntkrs_last_error());
    if (rc != NTKRS_ERR_ARGUMENT || bad != NULL) return 5;

    ntkrs_network_free(net);
    return 0;
}
