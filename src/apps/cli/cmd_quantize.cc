// scaleinfer quantize IN OUT --type TYPE: re-quantizes a GGUF model (see si/model/quantize_model.h).
#include <cstdio>

#include "command.h"
#include "si/base/thread_pool.h"
#include "si/base/timer.h"
#include "si/model/quantize_model.h"

namespace si::cli {
namespace {

struct Options {
  std::string in, out, type;
  int threads = 0;
};

int Run(const Options& o) {
  auto scheme = ParseQuantScheme(o.type);
  if (!scheme.ok()) return PrintError("quantize", scheme.status());
  ThreadPool pool(o.threads);
  const double t0 = NowSeconds();
  QuantizeReport r;
  Status st = QuantizeModelFile(o.in, o.out, *scheme, &pool, &r);
  if (!st.ok()) return PrintError("quantize", st);
  for (const std::string& note : r.notes) std::printf("note: %s\n", note.c_str());
  std::string types;
  for (const auto& [t, n] : r.tensors_by_type) types += StrCat(types.empty() ? "" : ", ", DTypeName(t), " ", n);
  std::printf("wrote %s (%s): %lld tensors (%s); %lld quantized, relative rms error %.4f\n", o.out.c_str(),
              QuantSchemeName(*scheme), static_cast<long long>(r.tensors), types.c_str(),
              static_cast<long long>(r.quantized), r.rel_rms_error);
  std::printf("tensor data %.1f MiB -> %.1f MiB (%.2fx smaller) in %.1f s\n", r.bytes_in / 1048576.0,
              r.bytes_out / 1048576.0, r.bytes_out > 0 ? static_cast<double>(r.bytes_in) / r.bytes_out : 0.0,
              NowSeconds() - t0);
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(quantize, "quantize", "Re-quantize a GGUF model (q8_0, q4_0, q4_k, q4_k_m, q5_k, q6_k, int8)",
                    65, [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<Options>();
                      sub.add_option("IN", o->in, "input GGUF model")->required();
                      sub.add_option("OUT", o->out, "output GGUF file (written atomically)")->required();
                      sub.add_option("--type", o->type,
                                     "q8_0, q4_0, q4_k, q4_k_m, q5_k, q6_k, or int8 (per-channel int8 stored as "
                                     "Q8_0 with one scale per row)")
                          ->required();
                      sub.add_option("-t,--threads", o->threads, "threads (0: all)")->capture_default_str();
                      return [o] { return Run(*o); };
                    });

}  // namespace si::cli
