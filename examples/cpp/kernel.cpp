// The NTK of a residual network from C++ through libntkrs, with an owning wrapper and exceptions.
//
// Build (after `cargo build --release -p ntkrs-capi`):
//   c++ -std=c++17 -Wall -I rust/capi/include examples/cpp/kernel.cpp -L target/release -lntkrs
//       -Wl,-rpath,$PWD/target/release -o kernel-cpp   (one line)
// Prints "ntk i j value" lines (17 significant digits) for 4 points, then a caught error.
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ntkrs.h"

namespace ntkrs {

struct Error : std::runtime_error {
    int code;
    Error(int c, const std::string &what) : std::runtime_error(what), code(c) {}
};

inline void check(int rc) {
    if (rc != NTKRS_OK) throw Error(rc, ntkrs_last_error());
}

class Network {
  public:
    explicit Network(const std::string &spec) {
        ntkrs_network *p = nullptr;
        check(ntkrs_network_from_spec(spec.c_str(), &p));
        net_.reset(p);
    }
    // the NTK of the rows of x (n × d, row-major), n × n
    std::vector<double> ntk(const std::vector<double> &x, size_t n, size_t d) const {
        std::vector<double> k(n * n);
        check(ntkrs_kernel_f64(net_.get(), x.data(), n, nullptr, 0, d, nullptr, k.data()));
        return k;
    }

  private:
    struct Free {
        void operator()(ntkrs_network *p) const { ntkrs_network_free(p); }
    };
    std::unique_ptr<ntkrs_network, Free> net_;
};

}  // namespace ntkrs

int main() {
    const size_t n = 4, d = 3;
    std::vector<double> x(n * d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) x[i * d + j] = std::cos(1.0 * i - 0.5 * j);
    ntkrs::Network net("resnet:gelu:2,layer_norm=pre,W_std=1.3,b_std=0.1,width=64");
    auto k = net.ntk(x, n, d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) std::printf("ntk %zu %zu %.17g\n", i, j, k[i * n + j]);
    try {
        ntkrs::Network bad("resnet:relu:2,layer_norm=middle");
        return 1;
    } catch (const ntkrs::Error &e) {
        std::printf("error %d %s\n", e.code, e.what());
    }
    return 0;
}
