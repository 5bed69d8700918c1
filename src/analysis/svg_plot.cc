#include "si/analysis/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace si::analysis {
namespace {

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

std::string Tick(double v) {
  std::ostringstream os;
  if (v >= 1e4 || v < 1e-2) {
    os << "1e" << static_cast<int>(std::round(std::log10(v)));
  } else {
    os << v;
  }
  return os.str();
}

}  // namespace

std::string RenderLogLogSvg(const std::vector<PlotPanel>& panels, const std::string& title) {
  const double pw = 520, ph = 400, ml = 70, mr = 20, mt = 50, mb = 60;
  const double width = panels.size() * (pw + ml + mr), height = ph + mt + mb;
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
        "fill=\"white\"/>\n";
  os << "<text x=\"" << width / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">"
     << Escape(title) << "</text>\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    const PlotPanel& panel = panels[p];
    double x0 = std::numeric_limits<double>::infinity(), x1 = 0, y0 = x0, y1 = 0;
    for (const auto& s : panel.series) {
      for (auto [x, y] : s.points) {
        if (x <= 0 || y <= 0) continue;
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
    }
    if (!(x1 > 0)) continue;
    const double lx0 = std::floor(std::log10(x0)), lx1 = std::ceil(std::log10(x1) + 1e-9);
    const double ly0 = std::floor(std::log10(y0)), ly1 = std::ceil(std::log10(y1) + 1e-9);
    const double ox = p * (pw + ml + mr) + ml, oy = mt;
    auto X = [&](double x) { return ox + (std::log10(x) - lx0) / std::max(1.0, lx1 - lx0) * pw; };
    auto Y = [&](double y) {
      return oy + ph - (std::log10(y) - ly0) / std::max(1.0, ly1 - ly0) * ph;
    };
    os << "<text x=\"" << ox + pw / 2 << "\" y=\"" << oy - 8
       << "\" text-anchor=\"middle\" font-size=\"13\">" << Escape(panel.title) << "</text>\n";
    os << "<rect x=\"" << ox << "\" y=\"" << oy << "\" width=\"" << pw << "\" height=\"" << ph
       << "\" fill=\"none\" stroke=\"black\"/>\n";
    for (double e = lx0; e <= lx1 + 1e-9; ++e) {
      const double v = std::pow(10.0, e);
      os << "<line x1=\"" << X(v) << "\" y1=\"" << oy << "\" x2=\"" << X(v) << "\" y2=\"" << oy + ph
         << "\" stroke=\"#ddd\"/><text x=\"" << X(v) << "\" y=\"" << oy + ph + 16
         << "\" text-anchor=\"middle\">" << Tick(v) << "</text>\n";
    }
    for (double e = ly0; e <= ly1 + 1e-9; ++e) {
      const double v = std::pow(10.0, e);
      os << "<line x1=\"" << ox << "\" y1=\"" << Y(v) << "\" x2=\"" << ox + pw << "\" y2=\"" << Y(v)
         << "\" stroke=\"#ddd\"/><text x=\"" << ox - 6 << "\" y=\"" << Y(v) + 4
         << "\" text-anchor=\"end\">" << Tick(v) << "</text>\n";
    }
    os << "<text x=\"" << ox + pw / 2 << "\" y=\"" << oy + ph + 40 << "\" text-anchor=\"middle\">"
       << Escape(panel.x_label) << "</text>\n";
    os << "<text transform=\"translate(" << ox - 50 << "," << oy + ph / 2
       << ") rotate(-90)\" text-anchor=\"middle\">" << Escape(panel.y_label) << "</text>\n";
    int legend = 0;
    for (const auto& s : panel.series) {
      std::vector<std::pair<double, double>> pts;
      std::vector<std::string> labels;
      for (size_t i = 0; i < s.points.size(); ++i) {
        if (s.points[i].first > 0 && s.points[i].second > 0) {
          pts.push_back(s.points[i]);
          labels.push_back(i < s.labels.size() ? s.labels[i] : "");
        }
      }
      if (s.line && pts.size() > 1) {
        std::vector<size_t> idx(pts.size());
        for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
        std::sort(idx.begin(), idx.end(),
                  [&](size_t a, size_t b) { return pts[a].first < pts[b].first; });
        os << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\" points=\"";
        for (size_t i : idx) os << X(pts[i].first) << "," << Y(pts[i].second) << " ";
        os << "\"/>\n";
      }
      for (size_t i = 0; i < pts.size(); ++i) {
        if (s.markers) {
          os << "<circle cx=\"" << X(pts[i].first) << "\" cy=\"" << Y(pts[i].second)
             << "\" r=\"3\" fill=\"" << s.color << "\"/>\n";
        }
        if (!labels[i].empty()) {
          os << "<text x=\"" << X(pts[i].first) + 5 << "\" y=\"" << Y(pts[i].second) - 5
             << "\" font-size=\"9\" fill=\"" << s.color << "\">" << Escape(labels[i])
             << "</text>\n";
        }
      }
      if (!s.name.empty()) {
        os << "<rect x=\"" << ox + 10 << "\" y=\"" << oy + 10 + 16 * legend
           << "\" width=\"10\" height=\"10\" fill=\"" << s.color << "\"/><text x=\"" << ox + 26
           << "\" y=\"" << oy + 19 + 16 * legend << "\">" << Escape(s.name) << "</text>\n";
        ++legend;
      }
    }
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace si::analysis
