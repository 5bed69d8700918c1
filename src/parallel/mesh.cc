#include "si/parallel/mesh.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "si/base/check.h"
#include "si/parallel/comm.h"

namespace si {

std::string AxisSet::Name() const {
  if (empty()) return "-";
  std::string s;
  if (has(0)) s += 'x';
  if (has(1)) s += 'y';
  if (has(2)) s += 'z';
  return s;
}

Result<AxisSet> ParseAxisSet(std::string_view s) {
  AxisSet a;
  if (s == "-" || s.empty()) return a;
  for (char c : s) {
    int axis = c == 'x' ? 0 : c == 'y' ? 1 : c == 'z' ? 2 : -1;
    if (axis < 0) return InvalidArgumentError("bad mesh axis set '", s, "' (letters x, y, z)");
    if (a.has(axis)) return InvalidArgumentError("mesh axis set '", s, "' repeats '", c, "'");
    a.bits |= static_cast<uint8_t>(1u << axis);
  }
  return a;
}

int MeshShape::GroupRank(AxisSet s, const std::array<int, 3>& c) const {
  int r = 0;
  for (int axis = 0; axis < 3; ++axis) {
    if (s.has(axis)) r = r * size(axis) + c[axis];
  }
  return r;
}

std::string MeshShape::ToString() const { return StrCat(x, "x", y, "x", z); }

Result<MeshShape> ParseMesh(std::string_view text) {
  const std::string_view orig = text;
  int sizes[3] = {1, 1, 1};
  int n = 0;
  while (true) {
    if (n == 3) {
      return InvalidArgumentError("--mesh '", orig, "': at most 3 axes (XxYxZ, e.g. 2x2x1)");
    }
    size_t pos = text.find('x');
    std::string_view part = text.substr(0, pos);
    int v = 0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || ptr != part.data() + part.size()) {
      return InvalidArgumentError("--mesh '", orig, "': '", part,
                                  "' is not a number (expected XxYxZ, XxY or X, e.g. 2x1x1)");
    }
    if (v < 1) return InvalidArgumentError("--mesh '", orig, "': axis sizes must be >= 1, got ", v);
    sizes[n++] = v;
    if (pos == std::string_view::npos) break;
    text = text.substr(pos + 1);
  }
  return MeshShape{sizes[0], sizes[1], sizes[2]};
}

namespace {

// First dimension that `d` does not divide into `parts`, as text; empty when all divide.
std::string Divides(std::string_view what, int64_t dim, int64_t parts) {
  if (parts <= 0 || dim % parts == 0) return "";
  return StrCat(what, " ", dim, " is not divisible by ", parts);
}

}  // namespace

std::vector<MeshFit> SuggestMeshes(int n, const ModelConfig& c) {
  std::vector<MeshFit> out;
  if (n < 1) return out;
  for (int x = 1; x <= n; ++x) {
    if (n % x) continue;
    for (int y = 1; y <= n / x; ++y) {
      if ((n / x) % y) continue;
      MeshFit f;
      f.shape = {x, y, n / x / y};
      const int64_t yz = f.shape.y * f.shape.z;
      const std::string dims[] = {Divides("model_dim", c.model_dim, int64_t{n}),
                                  Divides("ffn_dim", c.ffn_dim, yz * x)};
      const std::string heads[] = {Divides("num_heads", c.num_heads, yz * x),
                                   Divides("num_kv_heads", c.num_kv_heads, yz * x)};
      const std::string& dim_reason = !dims[0].empty() ? dims[0] : dims[1];
      const std::string& head_reason = !heads[0].empty() ? heads[0] : heads[1];
      f.batch_attention = c.q_dim() % n == 0 && c.kv_dim() % n == 0;
      // A mesh runs when the matmul dimensions divide and attention can be sharded over heads or,
      // for multiquery models whose single K/V head cannot be split (Pope et al. Sec. 3.3), over
      // the batch.
      f.reason = !dim_reason.empty() ? dim_reason : (f.batch_attention ? "" : head_reason);
      f.ws2d = f.reason.empty();
      f.ws1d = f.ws2d;  // same divisibility conditions on the products (n = x*y*z)
      // Prefer the 2D optimum x ~ 0.5 sqrt(n) (F = 4E), then y >= z (the paper's shapes are
      // near-cubes).
      const double target = 0.5 * std::sqrt(static_cast<double>(n));
      f.score = (f.ws2d ? 100.0 : 0.0) + (head_reason.empty() ? 20.0 : 0.0) +
                (f.batch_attention ? 10.0 : 0.0) -
                std::abs(std::log2(static_cast<double>(x)) - std::log2(std::max(1.0, target))) -
                0.01 * std::abs(f.shape.y - f.shape.z);
      out.push_back(f);
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const MeshFit& a, const MeshFit& b) { return a.score > b.score; });
  return out;
}

Result<MeshShape> SuggestMesh(int n, const ModelConfig& c) {
  if (n < 1) return InvalidArgumentError("number of ranks must be >= 1, got ", n);
  auto fits = SuggestMeshes(n, c);
  if (!fits.empty() && fits[0].ws2d) return fits[0].shape;
  return InvalidArgumentError(
      "no mesh of ", n, " ranks divides the model's dimensions (",
      fits.empty() ? "" : fits[0].reason,
      "); use a rank count that divides ffn_dim and model_dim, and num_heads "
      "and num_kv_heads (or, for attention over the batch, the q and kv widths)");
}

std::string MeshHint(int n, const ModelConfig& c) {
  auto fits = SuggestMeshes(n, c);
  std::vector<std::string> good;
  for (const MeshFit& f : fits) {
    if (f.ws2d && good.size() < 3) good.push_back(f.shape.ToString());
  }
  if (good.empty()) {
    return StrCat("no mesh of ", n, " ranks fits this model (",
                  fits.empty() ? std::string("?") : fits[0].reason, "); try fewer ranks");
  }
  std::string s = StrCat("try --mesh ", good[0]);
  for (size_t i = 1; i < good.size(); ++i) s += StrCat(i == 1 ? " (or " : ", ", good[i]);
  if (good.size() > 1) s += ")";
  return s;
}

Mesh::Mesh(MeshShape shape, int rank, std::array<std::unique_ptr<Comm>, 8> groups)
    : shape_(shape), rank_(rank), coords_(shape.Coords(rank)), groups_(std::move(groups)) {
  for (int b = 0; b < 8; ++b) {
    SI_CHECK(groups_[b] != nullptr) << "mesh group " << b << " missing";
    SI_CHECK(groups_[b]->size() == shape_.GroupSize(AxisSet{static_cast<uint8_t>(b)}));
  }
}

Mesh::~Mesh() = default;

std::array<int, 3> Mesh::MemberCoords(AxisSet axes, int j) const {
  std::array<int, 3> c = coords_;
  for (int a = 2; a >= 0; --a) {
    if (axes.has(a)) {
      c[a] = j % shape_.size(a);
      j /= shape_.size(a);
    }
  }
  return c;
}

int64_t Mesh::TotalBytesSent() const {
  int64_t total = 0;
  for (const auto& g : groups_) total += g->stats().total_bytes();
  return total;
}

void Mesh::ResetStats() {
  for (auto& g : groups_) g->ResetStats();
}

}  // namespace si
