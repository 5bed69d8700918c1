// Subcommand registry. Each command lives in its own cmd_<name>.cc and registers itself with
// SI_REGISTER_COMMAND, so adding a command touches no shared file. main.cc builds the CLI11 app from the
// registry, parses, and runs the chosen command's runner.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "si/base/status.h"

namespace si::cli {

// Runs the command after parsing; returns the exit code. A runner reports errors through PrintError.
using CommandRunner = std::function<int()>;
// Adds the command's options to `sub` (bound to state the runner captures) and returns the runner.
using CommandSetup = std::function<CommandRunner(CLI::App& sub)>;

struct CommandSpec {
  std::string name;
  std::string description;
  int order;  // position in --help
  CommandSetup setup;
};

bool RegisterCommand(CommandSpec spec);
std::vector<CommandSpec>& CommandRegistry();

// Prints "scaleinfer <command>: <message>" on stderr and returns 1: the one error line every command ends
// with on bad input.
int PrintError(const std::string& command, const Status& status);

}  // namespace si::cli

#define SI_REGISTER_COMMAND(ident, ...) \
  static const bool si_cmd_registered_##ident = ::si::cli::RegisterCommand(::si::cli::CommandSpec{__VA_ARGS__})
