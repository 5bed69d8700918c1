// Tokenizers built from a GGUF vocabulary, id-for-id equal to llama.cpp's (src/llama-vocab.cpp):
//   "llama" -> SentencePiece BPE (SPM): U+2581 space escaping, space prefix, bigram merges by
//   score, byte fallback. "gpt2"  -> byte-level BPE: pre-tokenizer regexes chosen by
//   tokenizer.ggml.pre, merges by rank. "bert"  -> WordPiece (WPM): lowercase + accent folding,
//   punctuation/CJK splitting, greedy longest match.
// Special tokens (CONTROL / USER_DEFINED / UNKNOWN) are cut out of the text first, as llama.cpp's
// tokenizer_st_partition does, including the lstrip/rstrip attributes it sets for some models.
// See docs/tokenizer.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "si/base/status.h"

namespace si {

class GgufFile;

// Token types as stored in tokenizer.ggml.token_type (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Everything the tokenizer reads from the GGUF `tokenizer.ggml.*` keys. Optional fields use -1 /
// absent flags to mean "not in the file"; defaults per model type are applied by
// Tokenizer::FromVocab exactly as llama.cpp applies them.
struct TokenizerVocab {
  std::string model;         // tokenizer.ggml.model: "llama", "gpt2", "bert"
  std::string pre;           // tokenizer.ggml.pre ("" if absent)
  std::string general_name;  // general.name (llama.cpp keys some attributes on it, e.g. phi-3)
  std::vector<std::string> tokens;   // tokenizer.ggml.tokens
  std::vector<float> scores;         // tokenizer.ggml.scores (may be empty)
  std::vector<int32_t> token_types;  // tokenizer.ggml.token_type (may be empty: all normal)
  std::vector<std::string> merges;   // tokenizer.ggml.merges ("a b", rank = index)
  // Special ids; -1 = key absent (then the model type's default applies).
  int64_t bos_id = -1, eos_id = -1, eot_id = -1, eom_id = -1, unk_id = -1, sep_id = -1, pad_id = -1,
          mask_id = -1;
  int64_t fim_pre_id = -1, fim_suf_id = -1, fim_mid_id = -1, fim_pad_id = -1, fim_rep_id = -1,
          fim_sep_id = -1;
  // Flags; -1 = key absent, 0/1 = value.
  int add_bos = -1, add_eos = -1, add_space_prefix = -1, remove_extra_whitespaces = -1;

  // Reads the keys above from a GGUF file.
  static Result<TokenizerVocab> FromGguf(const GgufFile& file);
};

class Tokenizer {
 public:
  // Clear errors for a missing vocabulary, an unknown tokenizer.ggml.model or an unknown
  // tokenizer.ggml.pre.
  static Result<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& file);
  static Result<std::unique_ptr<Tokenizer>> FromVocab(TokenizerVocab vocab);
  ~Tokenizer();

  // llama-tokenize semantics (llama_tokenize). add_special: BOS/EOS (SPM, BPE) or CLS/SEP (WPM) as
  // the vocab asks. parse_special: the text of CONTROL/UNKNOWN tokens becomes their id
  // (USER_DEFINED always does).
  std::vector<int32_t> Encode(std::string_view text, bool add_special, bool parse_special) const;

  // llama_token_to_piece(lstrip = 0): the bytes of one token. With special = false, CONTROL and
  // UNKNOWN tokens render as "" (what llama.cpp prints for generated text); with special = true
  // their text. Byte-level BPE pieces are unmapped to raw bytes, so a piece may be an incomplete
  // UTF-8 sequence.
  std::string TokenToPiece(int32_t id, bool special = true) const;
  // llama_detokenize: concatenated pieces, minus the leading space the SPM space-prefix added, with
  // llama.cpp's clean-up of spaces before punctuation for vocabularies that ask for it.
  // remove_special drops a leading BOS / trailing EOS the vocab adds; unparse_special renders
  // control tokens.
  std::string Decode(std::span<const int32_t> ids, bool remove_special = false,
                     bool unparse_special = false) const;

  int64_t vocab_size() const;
  int32_t bos_id() const;  // -1 when absent
  int32_t eos_id() const;
  int32_t eot_id() const;
  int32_t unk_id() const;
  int32_t sep_id() const;
  int32_t pad_id() const;
  bool add_bos() const;
  bool add_eos() const;
  // End of generation: eos, eot, eom and the end tokens llama.cpp knows by their text.
  bool IsEog(int32_t id) const;
  bool IsControl(int32_t id) const;
  TokenType token_type(int32_t id) const;
  const std::string& token_text(int32_t id) const;   // raw vocabulary entry
  int32_t TextToToken(std::string_view text) const;  // exact vocabulary lookup, -1 if none
  std::string_view model_type() const;               // "llama", "gpt2", "bert"
  // tokenizer.ggml.pre as used ("default" when absent, and for SPM/WPM).
  std::string_view pre_type() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Incremental detokenizer for streaming output: Push() returns the text that is complete so far,
// holding back a trailing incomplete UTF-8 sequence until the next token completes it. Flush()
// returns the rest.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool special = false)
      : tokenizer_(tokenizer), special_(special) {}
  std::string Push(int32_t id);
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool special_;
  std::string pending_;
};

}  // namespace si
