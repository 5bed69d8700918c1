// scaleinfer logits -m FILE --tokens 1,2,3 [--tokens 4,5 ...] [--tokens-file F] [--all] [--decode
// N]
// --out OUT: one batched prefill of every sequence, then N greedy decode steps of the whole batch;
// float32 LE logits, rows in this order: the prefill rows (per sequence in order: every position
// with --all, else the last), then per decode step one row per sequence. Under mpirun the batch
// runs on the distributed engine (so batch-split layouts, e.g. --attention batch, can be compared
// with a single process).
#include <algorithm>
#include <cstdio>
#include <fstream>

#include "args.h"
#include "command.h"
#include "dist_session.h"
#include "si/base/mmap_file.h"
#include "si/runtime/engine.h"

namespace si::cli {
namespace {

struct Options {
  std::string model, out, tokens_file;
  std::vector<std::string> tokens;
  bool all = false;
  int decode = 0;
  int threads = 0;
  DistFlags dist;
};

// Every --tokens, then every non-empty line of --tokens-file (comma-separated ids; '#' starts a
// comment).
Result<std::vector<std::vector<int32_t>>> Sequences(const Options& o) {
  std::vector<std::vector<int32_t>> seqs;
  for (size_t i = 0; i < o.tokens.size(); ++i) {
    auto ids = ParseIds(o.tokens[i]);
    if (!ids.ok()) return ids.status().WithContext(StrCat("--tokens #", i + 1));
    seqs.push_back(std::move(*ids));
  }
  if (!o.tokens_file.empty()) {
    std::ifstream in(o.tokens_file);
    if (!in) return NotFoundError("--tokens-file: cannot open ", o.tokens_file);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      line = line.substr(0, line.find('#'));
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto ids = ParseIds(line);
      if (!ids.ok()) return ids.status().WithContext(StrCat(o.tokens_file, ":", n));
      seqs.push_back(std::move(*ids));
    }
  }
  if (seqs.empty())
    return InvalidArgumentError("give the token ids with --tokens (repeatable) or --tokens-file");
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (seqs[i].empty()) return InvalidArgumentError("sequence ", i + 1, " has no tokens");
  }
  return seqs;
}

int Run(const Options& o) {
  if (o.decode < 0)
    return PrintError("logits", InvalidArgumentError("--decode must be >= 0, got ", o.decode));
  auto prompts = Sequences(o);
  if (!prompts.ok()) return PrintError("logits", prompts.status());
  const int64_t n = static_cast<int64_t>(prompts->size());
  size_t longest = 0;
  for (const auto& p : *prompts) longest = std::max(longest, p.size());
  // Single process, or every MPI rank (rank 0 alone writes and prints).
  auto session =
      Session::Open(o.model, o.dist, {.num_threads = o.threads},
                    {.batch = n, .prompt = static_cast<int64_t>(longest), .gen = o.decode});
  if (!session.ok()) {
    return OpenError("logits", session.status());
  }
  Session& s = **session;
  if (s.config().is_encoder()) {
    return s.Error("logits",
                   InvalidArgumentError(o.model, " is an encoder (", ArchName(s.config().arch),
                                        "): it has no logits; use 'scaleinfer embed'"));
  }
  if (s.root() && !s.choice_note().empty() && o.dist.verbose)
    std::fputs(s.choice_note().c_str(), stderr);
  const int64_t V = s.config().vocab_size;
  std::vector<int> seqs;
  std::vector<SeqTokens> batch;
  for (const auto& p : *prompts) {
    seqs.push_back(s.NewSequence());
    batch.push_back({seqs.back(), p, o.all});
  }
  std::vector<float> logits, all;
  Status st = s.Forward(batch, &logits);
  if (!st.ok()) return s.Error("logits", st);
  all = logits;
  // Greedy decode: every rank has the same logits, so every rank picks the same tokens.
  std::vector<int64_t> last(n);  // row of each sequence's last position in `logits`
  int64_t row = 0;
  for (int64_t b = 0; b < n; ++b) {
    row += o.all ? static_cast<int64_t>((*prompts)[b].size()) : 1;
    last[b] = row - 1;
  }
  std::vector<int32_t> next(n);
  for (int step = 0; step < o.decode; ++step) {
    for (int64_t b = 0; b < n; ++b) {
      const float* r = &logits[last[b] * V];
      next[b] = static_cast<int32_t>(std::max_element(r, r + V) - r);
      batch[b] = {seqs[b], std::span<const int32_t>(&next[b], 1), false};
      last[b] = b;
    }
    st = s.Forward(batch, &logits);
    if (!st.ok()) return s.Error("logits", st.WithContext(StrCat("decode step ", step + 1)));
    all.insert(all.end(), logits.begin(), logits.end());
  }
  if (!s.root()) return 0;
  if (s.distributed() && o.dist.verbose) {
    std::fprintf(stderr, "%s; weights %.2f MiB per rank (max), KV cache %.2f MiB (rank 0)\n",
                 s.description().c_str(), s.max_weight_bytes_per_rank() / 1048576.0,
                 s.dist()->kv_cache_bytes() / 1048576.0);
  }
  st = WriteFileAtomic(o.out, all.data(), all.size() * sizeof(float));
  if (!st.ok()) return PrintError("logits", st);
  std::printf("wrote %s: float32 [%lld, %lld]", o.out.c_str(),
              static_cast<long long>(all.size() / V), static_cast<long long>(V));
  if (n > 1 || o.decode > 0) {
    std::printf(" (%lld sequences: %lld prefill rows, then %d decode steps x %lld)",
                static_cast<long long>(n), static_cast<long long>(row), o.decode,
                static_cast<long long>(n));
  }
  std::printf("\n");
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(
    logits, "logits",
    "Run one batched prefill (and greedy decode steps) and write the logits (float32, row-major)",
    30, [](CLI::App& sub) -> CommandRunner {
      auto o = std::make_shared<Options>();
      sub.add_option("-m,--model", o->model, "GGUF model file")->required();
      sub.add_option("--tokens", o->tokens,
                     "comma-separated token ids of one sequence; repeat for a batch")
          ->allow_extra_args(false);
      sub.add_option("--tokens-file", o->tokens_file,
                     "more sequences, one per line (comma-separated ids)");
      sub.add_flag("--all", o->all,
                   "prefill logits of every position [n_tokens, n_vocab], else the last row of "
                   "each sequence");
      sub.add_option("--decode", o->decode,
                     "greedy decode steps after the prefill (one row per sequence each)");
      sub.add_option("--out", o->out, "output file")->required();
      sub.add_option("-t,--threads", o->threads, "threads (0: all cores)");
      o->dist.Add(sub);
      return [o] { return Run(*o); };
    });

}  // namespace si::cli
