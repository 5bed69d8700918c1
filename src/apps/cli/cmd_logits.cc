// scaleinfer logits -m FILE --tokens 1,2,3 [--all] --out OUT: one batched prefill; float32 LE logits.
#include <cstdio>

#include "args.h"
#include "command.h"
#include "si/base/mmap_file.h"
#include "dist_session.h"
#include "si/runtime/engine.h"

namespace si::cli {
namespace {

struct Options {
  std::string model, tokens, out;
  bool all = false;
  int threads = 0;
  DistFlags dist;
};

int Run(const Options& o) {
  auto ids = ParseIds(o.tokens);
  if (!ids.ok()) return PrintError("logits", ids.status());
  // Single process, or every MPI rank (rank 0 alone writes and prints).
  auto session = Session::Open(o.model, o.dist, {.num_threads = o.threads},
                               {.batch = 1, .prompt = static_cast<int64_t>(ids->size()), .gen = 0});
  if (!session.ok()) {
    return OpenError("logits", session.status());
  }
  Session& s = **session;
  if (s.config().is_encoder()) {
    return s.Error("logits", InvalidArgumentError(o.model, " is an encoder (", ArchName(s.config().arch),
                                                  "): it has no logits; use 'scaleinfer embed'"));
  }
  if (s.root() && !s.choice_note().empty() && o.dist.verbose) std::fputs(s.choice_note().c_str(), stderr);
  const int seq = s.NewSequence();
  SeqTokens batch{seq, *ids, o.all};
  std::vector<float> logits;
  Status st = s.Forward({&batch, 1}, &logits);
  if (!st.ok()) return s.Error("logits", st);
  if (!s.root()) return 0;
  if (s.distributed() && o.dist.verbose) {
    std::fprintf(stderr, "%s; weights %.2f MiB per rank (max), KV cache %.2f MiB (rank 0)\n", s.description().c_str(),
                 s.max_weight_bytes_per_rank() / 1048576.0, s.dist()->kv_cache_bytes() / 1048576.0);
  }
  st = WriteFileAtomic(o.out, logits.data(), logits.size() * sizeof(float));
  if (!st.ok()) return PrintError("logits", st);
  const int64_t V = s.config().vocab_size;
  std::printf("wrote %s: float32 [%lld, %lld]\n", o.out.c_str(), static_cast<long long>(logits.size() / V),
              static_cast<long long>(V));
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(logits, "logits", "Run one batched prefill and write the logits (float32, row-major)", 30,
                    [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<Options>();
                      sub.add_option("-m,--model", o->model, "GGUF model file")->required();
                      sub.add_option("--tokens", o->tokens, "comma-separated token ids")->required();
                      sub.add_flag("--all", o->all, "logits of every position [n_tokens, n_vocab], else the last row");
                      sub.add_option("--out", o->out, "output file")->required();
                      sub.add_option("-t,--threads", o->threads, "threads (0: all cores)");
                      o->dist.Add(sub);
                      return [o] { return Run(*o); };
                    });

}  // namespace si::cli
