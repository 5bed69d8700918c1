// Unicode helpers for the tokenizers, with the exact semantics llama.cpp's src/unicode.cpp gives
// them.
//
// Character data (general category, White_Space, simple lowercase, canonical decomposition) comes
// from ICU (libicu-dev); see the comment at the top of tokenizer.cc for why. What is
// llama.cpp-specific lives here: its lenient UTF-8 decoder, its category flags (one bit per major
// category, unassigned = "undefined"), "NFD" meaning "first code point of the canonical
// decomposition", the GPT-2 byte<->unicode map, and the pre-tokenizer split (hand-written GPT-2 /
// LLaMA-3 splitters, std::regex over a category-collapsed text for patterns with \p{..},
// std::wregex for the others).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace si::unicode {

// One bit per major general category, as llama.cpp's unicode_cpt_flags. Unassigned code points (Cn)
// have kUndefined set (so do values past U+10FFFF); only "no character" (a position outside the
// current segment in the hand-written splitters) has no bit at all, as_uint() == 0 in llama.cpp.
struct CptFlags {
  enum : uint16_t {
    kUndefined = 0x0001,
    kNumber = 0x0002,       // \p{N}
    kLetter = 0x0004,       // \p{L}
    kSeparator = 0x0008,    // \p{Z}
    kAccentMark = 0x0010,   // \p{M}
    kPunctuation = 0x0020,  // \p{P}
    kSymbol = 0x0040,       // \p{S}
    kControl = 0x0080,      // \p{C}
    kCategoryMask = 0x00FF,
    kWhitespace = 0x0100,  // White_Space property (regex \s)
  };
  uint16_t bits = 0;

  bool is_undefined() const { return bits & kUndefined; }
  bool is_number() const { return bits & kNumber; }
  bool is_letter() const { return bits & kLetter; }
  bool is_separator() const { return bits & kSeparator; }
  bool is_accent_mark() const { return bits & kAccentMark; }
  bool is_punctuation() const { return bits & kPunctuation; }
  bool is_symbol() const { return bits & kSymbol; }
  bool is_control() const { return bits & kControl; }
  bool is_whitespace() const { return bits & kWhitespace; }
  uint16_t category() const { return bits & kCategoryMask; }
  bool any() const { return bits != 0; }
};

inline constexpr uint32_t kMaxCodepoints = 0x110000;
inline constexpr uint32_t kReplacementChar = 0xFFFD;

CptFlags FlagsOf(uint32_t cpt);
uint32_t ToLower(uint32_t cpt);   // simple lowercase mapping (UnicodeData field 13)
uint32_t NfdFirst(uint32_t cpt);  // first code point of the canonical decomposition (cpt if none)

// Length of a UTF-8 sequence from its first byte (1 for continuation bytes), as llama.cpp's
// unicode_len_utf8.
size_t Utf8Len(char first_byte);
// Lenient decoder: an invalid sequence becomes U+FFFD and consumes one byte.
std::vector<uint32_t> DecodeUtf8(std::string_view utf8);
void AppendUtf8(uint32_t cpt, std::string* out);  // code points past U+10FFFF are written as U+FFFD
std::string EncodeUtf8(uint32_t cpt);

// GPT-2 byte-level mapping: each byte to a printable code point (as UTF-8) and back.
const std::string& ByteToUtf8(uint8_t byte);
// Returns -1 if `utf8` is not the image of a byte.
int Utf8ToByte(std::string_view utf8);

// Pre-tokenizer: split `text` into words with a cascade of patterns; each pattern re-splits the
// pieces of the previous one. Patterns are llama.cpp's regex strings (ECMAScript syntax plus \p{N},
// \p{L}, \p{P}, \p{M}, \p{S}, \p{Lu} ...). The GPT-2 and LLaMA-3 patterns run as hand-written
// splitters (as in llama.cpp). Words are returned as UTF-8 (invalid input bytes already replaced by
// U+FFFD), not yet byte-encoded.
class RegexSplitter {
 public:
  explicit RegexSplitter(std::vector<std::string> patterns);
  ~RegexSplitter();
  RegexSplitter(RegexSplitter&&) noexcept;
  RegexSplitter& operator=(RegexSplitter&&) noexcept;

  std::vector<std::string> Split(std::string_view text) const;

 private:
  struct Compiled;
  std::vector<std::string> patterns_;
  std::vector<Compiled> compiled_;
  bool need_collapse_ = false;
};

}  // namespace si::unicode
