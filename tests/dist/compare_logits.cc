// compare_logits TEST REF TOL: two float32 logits files of the same size; prints max |a-b| / max |ref| and
// exits 0 iff it is <= TOL (0: bit-identical required).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <vector>

static std::vector<float> Read(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> f(b.size() / 4);
  for (size_t i = 0; i < f.size(); ++i) f[i] = reinterpret_cast<const float*>(b.data())[i];
  return f;
}

int main(int argc, char** argv) {
  if (argc != 4) return std::fprintf(stderr, "usage: compare_logits TEST REF TOL\n"), 2;
  const auto a = Read(argv[1]), b = Read(argv[2]);
  const double tol = std::atof(argv[3]);
  if (a.empty() || a.size() != b.size()) {
    std::printf("FAIL: sizes %zu vs %zu\n", a.size(), b.size());
    return 1;
  }
  double md = 0, mr = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    md = std::max(md, std::fabs(static_cast<double>(a[i]) - b[i]));
    mr = std::max(mr, std::fabs(static_cast<double>(b[i])));
  }
  const double rel = md / mr;
  std::printf("%s: %zu floats, max rel error %.3g (tol %.3g)\n", rel <= tol ? "PASS" : "FAIL", a.size(), rel, tol);
  return rel <= tol ? 0 : 1;
}
