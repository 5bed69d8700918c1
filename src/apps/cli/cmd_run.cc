// scaleinfer run: generate from a prompt (text or ids), streaming the text, or the ids with --ids.
#include <cstdio>

#include "args.h"
#include "command.h"
#include "si/base/timer.h"
#include "si/model/tokenizer.h"
#include "dist_session.h"
#include "si/runtime/engine.h"
#include "si/runtime/sampler.h"

namespace si::cli {
namespace {

struct Options {
  std::string model, prompt, tokens;
  int n = 32, threads = 0;
  bool ids = false, ignore_eos = false, quiet = false;
  int64_t ctx = 0;
  SamplerOptions sampling;
  DistFlags dist;
};

int Run(const Options& o) {
  Status st = o.sampling.Validate();
  if (!st.ok()) return PrintError("run", st);
  if (o.n < 0) return PrintError("run", InvalidArgumentError("-n must be >= 0, got ", o.n));
  // Single process, or every MPI rank (rank 0 alone prints). Every rank samples the same token from the
  // same logits (the sampler is seeded identically), so the ranks stay in step without a broadcast.
  auto session = Session::Open(o.model, o.dist, {.num_threads = o.threads, .context_len = o.ctx},
                               {.batch = 1, .prompt = 64, .gen = o.n});
  if (!session.ok()) {
    return OpenError("run", session.status());
  }
  Session& e = **session;
  const bool root = e.root();
  if (e.config().is_encoder()) {
    return e.Error("run", InvalidArgumentError(o.model, " is an encoder (", ArchName(e.config().arch),
                                               "): it cannot generate; use 'scaleinfer embed'"));
  }
  auto tok = Tokenizer::FromGguf(e.model().gguf());
  if (!tok.ok()) return e.Error("run", tok.status().WithContext(o.model));
  std::vector<int32_t> prompt;
  if (!o.tokens.empty()) {
    auto ids = ParseIds(o.tokens);
    if (!ids.ok()) return e.Error("run", ids.status());
    prompt = *ids;
  } else {
    prompt = (*tok)->Encode(o.prompt, true, true);
  }
  if (prompt.empty()) return e.Error("run", InvalidArgumentError("the prompt has no tokens"));
  if (static_cast<int64_t>(prompt.size()) + o.n > e.context_len()) {
    return e.Error("run", OutOfRangeError("prompt of ", prompt.size(), " tokens + ", o.n,
                                          " generated exceeds the context length of ", e.context_len()));
  }
  if (root && o.dist.verbose && !e.choice_note().empty()) std::fputs(e.choice_note().c_str(), stderr);
  Sampler sampler(o.sampling);
  const int seq = e.NewSequence();
  std::vector<int32_t> history = prompt, generated;
  std::vector<float> logits;
  const double t0 = NowSeconds();
  SeqTokens batch{seq, prompt, false};
  st = e.Forward({&batch, 1}, &logits);
  if (!st.ok()) return e.Error("run", st);
  const double t1 = NowSeconds();
  StreamDecoder text(**tok);  // holds back bytes of an incomplete UTF-8 character
  for (int i = 0; i < o.n; ++i) {
    const int32_t next = sampler.Sample(logits, history);
    if (!o.ignore_eos && (*tok)->IsEog(next)) break;
    generated.push_back(next);
    history.push_back(next);
    if (!o.ids && root) {
      std::fputs(text.Push(next).c_str(), stdout);
      std::fflush(stdout);
    }
    if (i + 1 == o.n) break;
    SeqTokens step{seq, {&generated.back(), 1}, false};
    st = e.Forward({&step, 1}, &logits);
    if (!st.ok()) return e.Error("run", st);
  }
  const double t2 = NowSeconds();
  if (!root) return 0;
  if (o.ids) {
    std::printf("%s\n", JoinIds(generated).c_str());
  } else {
    std::printf("%s\n", text.Flush().c_str());
  }
  std::fflush(stdout);
  if (!o.quiet) {
    const size_t decoded = generated.empty() ? 0 : generated.size() - 1;
    std::fprintf(stderr, "prefill: %zu tokens in %.1f ms (%.1f tokens/s); decode: %zu tokens in %.1f ms "
                 "(%.1f tokens/s); %d threads, %s kernels\n",
                 prompt.size(), (t1 - t0) * 1e3, prompt.size() / (t1 - t0), decoded, (t2 - t1) * 1e3,
                 decoded > 0 ? decoded / (t2 - t1) : 0.0, e.num_threads(), e.kernels_name());
    if (e.distributed()) {
      std::fprintf(stderr, "%s; weights %.2f MiB per rank (max), KV cache %.2f MiB (rank 0)\n",
                   e.description().c_str(), e.max_weight_bytes_per_rank() / 1048576.0,
                   e.dist()->kv_cache_bytes() / 1048576.0);
    }
  }
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(run, "run", "Generate text from a prompt", 40, [](CLI::App& sub) -> CommandRunner {
  auto o = std::make_shared<Options>();
  sub.add_option("-m,--model", o->model, "GGUF model file")->required();
  auto* p = sub.add_option("-p,--prompt", o->prompt, "prompt text");
  auto* t = sub.add_option("--tokens", o->tokens, "prompt as comma-separated token ids");
  p->excludes(t);
  sub.add_option("-n,--n-predict", o->n, "tokens to generate")->capture_default_str();
  sub.add_option("--temp", o->sampling.temperature, "temperature (0: greedy)")->capture_default_str();
  sub.add_option("--top-k", o->sampling.top_k, "top-k (0: off)")->capture_default_str();
  sub.add_option("--top-p", o->sampling.top_p, "top-p (1: off)")->capture_default_str();
  sub.add_option("--min-p", o->sampling.min_p, "min-p (0: off)")->capture_default_str();
  sub.add_option("--repeat-penalty", o->sampling.repeat_penalty, "repetition penalty (1: off)")->capture_default_str();
  sub.add_option("--repeat-last-n", o->sampling.repeat_last_n, "tokens the penalty looks back over")->capture_default_str();
  sub.add_option("--seed", o->sampling.seed, "sampling seed")->capture_default_str();
  sub.add_flag("--ids", o->ids, "print the generated token ids comma-separated instead of text");
  sub.add_flag("--ignore-eos", o->ignore_eos, "keep generating after an end-of-generation token");
  sub.add_option("-t,--threads", o->threads, "threads (0: all cores)");
  sub.add_option("-c,--ctx", o->ctx, "context length (0: the model's)");
  sub.add_flag("-q,--quiet", o->quiet, "no timing line on stderr");
  o->dist.Add(sub);
  return [o, p, t] {
    if (p->count() == 0 && t->count() == 0) return PrintError("run", InvalidArgumentError("give -p TEXT or --tokens IDS"));
    return Run(*o);
  };
});

}  // namespace si::cli
