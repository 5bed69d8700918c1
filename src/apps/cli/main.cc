// scaleinfer: one binary, many subcommands (see README.md and docs/).
#include <algorithm>
#include <cstdio>
#include <exception>

#include "command.h"

namespace si::cli {

std::vector<CommandSpec>& CommandRegistry() {
  static std::vector<CommandSpec> registry;
  return registry;
}

bool RegisterCommand(CommandSpec spec) {
  CommandRegistry().push_back(std::move(spec));
  return true;
}

int PrintError(const std::string& command, const Status& status) {
  std::fprintf(stderr, "scaleinfer %s: %s\n", command.c_str(), status.message().c_str());
  return 1;
}

}  // namespace si::cli

int main(int argc, char** argv) {
  using namespace si::cli;
  CLI::App app{
      "ScaleInfer: transformer inference on CPUs and clusters, and the analytical model that plans it "
      "(Pope et al. 2023; Kim et al. 2023)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "scaleinfer 0.1.0");
  auto& registry = CommandRegistry();
  std::sort(registry.begin(), registry.end(),
            [](const CommandSpec& a, const CommandSpec& b) { return a.order < b.order; });
  std::vector<std::pair<CLI::App*, CommandRunner>> commands;
  for (auto& spec : registry) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.description);
    commands.emplace_back(sub, spec.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints help / version (exit 0) or one error line plus a usage hint (non-zero).
    return app.exit(e);
  }
  for (auto& [sub, run] : commands) {
    if (sub->parsed()) {
      try {
        return run();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "scaleinfer %s: %s\n", sub->get_name().c_str(), e.what());
        return 1;
      }
    }
  }
  return 1;
}
