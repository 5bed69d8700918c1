// A small log-log SVG plot writer (no dependencies) for the planner's Pareto frontier and the
// roofline plots.
#pragma once

#include <string>
#include <vector>

namespace si::analysis {

struct PlotSeries {
  std::string name;
  std::string color;  // CSS color
  std::vector<std::pair<double, double>> points;
  bool line = false;  // connect the points (sorted by x)
  bool markers = true;
  std::vector<std::string> labels;  // optional, one per point
};

struct PlotPanel {
  std::string title;
  std::string x_label, y_label;
  std::vector<PlotSeries> series;
};

// Panels side by side, each with log-scaled axes fitted to its data (decade grid lines).
std::string RenderLogLogSvg(const std::vector<PlotPanel>& panels, const std::string& title);

}  // namespace si::analysis
