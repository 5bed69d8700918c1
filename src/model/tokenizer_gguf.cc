// Reading the tokenizer.ggml.* keys of a GGUF file into a TokenizerVocab.
#include "si/model/gguf.h"
#include "si/model/tokenizer.h"

namespace si {
namespace {

Result<int> OptionalBool(const GgufFile& f, const std::string& key) {
  if (!f.Has(key)) return -1;
  SI_ASSIGN_OR_RETURN(bool b, f.GetBool(key));
  return b ? 1 : 0;
}

}  // namespace

Result<TokenizerVocab> TokenizerVocab::FromGguf(const GgufFile& f) {
  TokenizerVocab v;
  SI_ASSIGN_OR_RETURN(v.model, f.GetStringOr("tokenizer.ggml.model", ""));
  if (v.model.empty())
    return NotFoundError(f.path(), ": no tokenizer (tokenizer.ggml.model is missing)");
  SI_ASSIGN_OR_RETURN(v.pre, f.GetStringOr("tokenizer.ggml.pre", ""));
  SI_ASSIGN_OR_RETURN(v.general_name, f.GetStringOr("general.name", ""));
  if (!f.Has("tokenizer.ggml.tokens"))
    return NotFoundError(f.path(), ": tokenizer.ggml.tokens is missing");
  SI_ASSIGN_OR_RETURN(v.tokens, f.GetStringArray("tokenizer.ggml.tokens"));
  if (f.Has("tokenizer.ggml.scores")) {
    SI_ASSIGN_OR_RETURN(v.scores, f.GetFloatArray("tokenizer.ggml.scores"));
  }
  if (f.Has("tokenizer.ggml.token_type")) {
    SI_ASSIGN_OR_RETURN(v.token_types, f.GetIntArray("tokenizer.ggml.token_type"));
  }
  if (f.Has("tokenizer.ggml.merges")) {
    SI_ASSIGN_OR_RETURN(v.merges, f.GetStringArray("tokenizer.ggml.merges"));
  } else if (v.model == "gpt2") {
    return NotFoundError(f.path(),
                         ": tokenizer.ggml.merges is missing (required for a gpt2 tokenizer)");
  }
  struct IdKey {
    const char* key;
    int64_t* id;
  };
  const IdKey ids[] = {
      {"tokenizer.ggml.bos_token_id", &v.bos_id},
      {"tokenizer.ggml.eos_token_id", &v.eos_id},
      {"tokenizer.ggml.eot_token_id", &v.eot_id},
      {"tokenizer.ggml.eom_token_id", &v.eom_id},
      {"tokenizer.ggml.unknown_token_id", &v.unk_id},
      {"tokenizer.ggml.seperator_token_id", &v.sep_id},  // sic: llama.cpp's key spelling
      {"tokenizer.ggml.padding_token_id", &v.pad_id},
      {"tokenizer.ggml.mask_token_id", &v.mask_id},
      {"tokenizer.ggml.fim_pre_token_id", &v.fim_pre_id},
      {"tokenizer.ggml.fim_suf_token_id", &v.fim_suf_id},
      {"tokenizer.ggml.fim_mid_token_id", &v.fim_mid_id},
      {"tokenizer.ggml.fim_pad_token_id", &v.fim_pad_id},
      {"tokenizer.ggml.fim_rep_token_id", &v.fim_rep_id},
      {"tokenizer.ggml.fim_sep_token_id", &v.fim_sep_id},
      // deprecated names of the FIM ids
      {"tokenizer.ggml.prefix_token_id", &v.fim_pre_id},
      {"tokenizer.ggml.suffix_token_id", &v.fim_suf_id},
      {"tokenizer.ggml.middle_token_id", &v.fim_mid_id},
  };
  for (const IdKey& k : ids) {
    if (!f.Has(k.key)) continue;
    SI_ASSIGN_OR_RETURN(int64_t id, f.GetInt(k.key));
    if (id >= 0 && id < static_cast<int64_t>(v.tokens.size())) *k.id = id;
  }
  SI_ASSIGN_OR_RETURN(v.add_bos, OptionalBool(f, "tokenizer.ggml.add_bos_token"));
  SI_ASSIGN_OR_RETURN(v.add_eos, OptionalBool(f, "tokenizer.ggml.add_eos_token"));
  SI_ASSIGN_OR_RETURN(v.add_space_prefix, OptionalBool(f, "tokenizer.ggml.add_space_prefix"));
  SI_ASSIGN_OR_RETURN(v.remove_extra_whitespaces,
                      OptionalBool(f, "tokenizer.ggml.remove_extra_whitespaces"));
  return v;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& file) {
  SI_ASSIGN_OR_RETURN(TokenizerVocab v, TokenizerVocab::FromGguf(file));
  auto t = FromVocab(std::move(v));
  if (!t.ok()) return t.status().WithContext(file.path());
  return t;
}

}  // namespace si
