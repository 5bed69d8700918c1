// Unicode helpers with llama.cpp's semantics; see unicode.h. Character data from ICU (see
// tokenizer.cc).
#include "model/unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utypes.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <unordered_map>

namespace si::unicode {
namespace {

uint16_t CategoryFlag(uint32_t cpt) {
  switch (u_charType(static_cast<UChar32>(cpt))) {
    case U_UNASSIGNED:  // Cn
      return CptFlags::kUndefined;
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return CptFlags::kLetter;
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK:
      return CptFlags::kAccentMark;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      return CptFlags::kNumber;
    case U_SPACE_SEPARATOR:
    case U_LINE_SEPARATOR:
    case U_PARAGRAPH_SEPARATOR:
      return CptFlags::kSeparator;
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_PRIVATE_USE_CHAR:
    case U_SURROGATE:
      return CptFlags::kControl;
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_CONNECTOR_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
      return CptFlags::kPunctuation;
    case U_MATH_SYMBOL:
    case U_CURRENCY_SYMBOL:
    case U_MODIFIER_SYMBOL:
    case U_OTHER_SYMBOL:
      return CptFlags::kSymbol;
    default:
      return CptFlags::kUndefined;
  }
}

// Flags of every code point, built once (1.1M ICU lookups, a few ms).
const std::vector<uint16_t>& FlagTable() {
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(kMaxCodepoints);
    for (uint32_t c = 0; c < kMaxCodepoints; ++c) {
      uint16_t f = CategoryFlag(c);
      if (u_isUWhiteSpace(static_cast<UChar32>(c))) f |= CptFlags::kWhitespace;
      t[c] = f;
    }
    return t;
  }();
  return table;
}

struct ByteMaps {
  std::array<std::string, 256> byte_to_utf8;
  std::unordered_map<std::string, uint8_t> utf8_to_byte;
};

const ByteMaps& GetByteMaps() {
  static const ByteMaps maps = [] {
    ByteMaps m;
    std::array<bool, 256> direct{};
    for (int c = 0x21; c <= 0x7E; ++c) direct[c] = true;
    for (int c = 0xA1; c <= 0xAC; ++c) direct[c] = true;
    for (int c = 0xAE; c <= 0xFF; ++c) direct[c] = true;
    int n = 0;
    for (int c = 0; c < 256; ++c) {
      const uint32_t cpt = direct[c] ? static_cast<uint32_t>(c) : 256u + n++;
      m.byte_to_utf8[c] = EncodeUtf8(cpt);
      m.utf8_to_byte[m.byte_to_utf8[c]] = static_cast<uint8_t>(c);
    }
    return m;
  }();
  return maps;
}

// ---------------------------------------------------------------------------------------------------------
// Hand-written splitters (llama.cpp runs these instead of the regex for the two most common
// patterns).

constexpr uint32_t kOutOfRange = 0xFFFFFFFF;

struct Segment {
  const std::vector<uint32_t>& cpts;
  size_t begin, end;  // [begin, end) in cpts
  uint32_t Cpt(size_t pos) const { return (pos >= begin && pos < end) ? cpts[pos] : kOutOfRange; }
  CptFlags Flags(size_t pos) const {
    return (pos >= begin && pos < end) ? FlagsOf(cpts[pos]) : CptFlags{};
  }
};

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void SplitGpt2(const Segment& s, std::vector<size_t>* out) {
  size_t prev_end = s.begin;
  auto add = [&](size_t end) -> size_t {
    const size_t len = end - prev_end;
    if (len > 0) out->push_back(len);
    prev_end = end;
    return len;
  };
  for (size_t pos = s.begin; pos < s.end;) {
    const uint32_t cpt = s.Cpt(pos);
    const CptFlags flags = s.Flags(pos);

    if (cpt == '\'' && pos + 1 < s.end) {
      const uint32_t next = s.Cpt(pos + 1);
      if (next == 's' || next == 't' || next == 'm' || next == 'd') {
        pos += add(pos + 2);
        continue;
      }
      if (pos + 2 < s.end) {
        const uint32_t next2 = s.Cpt(pos + 2);
        if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') ||
            (next == 'l' && next2 == 'l')) {
          pos += add(pos + 3);
          continue;
        }
      }
    }

    CptFlags f2 = (cpt == ' ') ? s.Flags(pos + 1) : flags;
    if (f2.is_letter()) {  // <space>?\p{L}+
      pos += (cpt == ' ');
      while (f2.is_letter()) f2 = s.Flags(++pos);
      add(pos);
      continue;
    }
    if (f2.is_number()) {  // <space>?\p{N}+
      pos += (cpt == ' ');
      while (f2.is_number()) f2 = s.Flags(++pos);
      add(pos);
      continue;
    }
    auto is_other = [](CptFlags f) {
      return !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.any();
    };
    if (is_other(f2)) {  // <space>?[^\s\p{L}\p{N}]+
      pos += (cpt == ' ');
      while (is_other(f2)) f2 = s.Flags(++pos);
      add(pos);
      continue;
    }

    size_t num_ws = 0;
    while (s.Flags(pos + num_ws).is_whitespace()) ++num_ws;
    if (num_ws > 1 && s.Cpt(pos + num_ws) != kOutOfRange) {  // \s+(?!\S)
      pos += num_ws - 1;
      add(pos);
      continue;
    }
    if (num_ws > 0) {  // \s+
      pos += num_ws;
      add(pos);
      continue;
    }
    add(++pos);  // no match
  }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+| \s+(?!\S)|\s+
void SplitLlama3(const Segment& s, std::vector<size_t>* out) {
  size_t prev_end = s.begin;
  auto add = [&](size_t end) -> size_t {
    const size_t len = end - prev_end;
    if (len > 0) out->push_back(len);
    prev_end = end;
    return len;
  };
  for (size_t pos = s.begin; pos < s.end;) {
    const uint32_t cpt = s.Cpt(pos);
    const CptFlags flags = s.Flags(pos);

    if (cpt == '\'' && pos + 1 < s.end) {
      const uint32_t next = ToLower(s.Cpt(pos + 1));
      if (next == 's' || next == 't' || next == 'm' || next == 'd') {
        pos += add(pos + 2);
        continue;
      }
      if (pos + 2 < s.end) {
        const uint32_t next2 = ToLower(s.Cpt(pos + 2));
        if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') ||
            (next == 'l' && next2 == 'l')) {
          pos += add(pos + 3);
          continue;
        }
      }
    }

    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(cpt == '\r' || cpt == '\n' || flags.is_number())) {
      if (flags.is_letter() || s.Flags(pos + 1).is_letter()) {
        ++pos;
        while (s.Flags(pos).is_letter()) ++pos;
        add(pos);
        continue;
      }
    }

    // \p{N}{1,3}
    if (flags.is_number()) {
      size_t ini = pos;
      while (s.Flags(pos).is_number()) {
        if (++pos - ini >= 3) {
          add(pos);
          ini = pos;
        }
      }
      add(pos);
      continue;
    }

    // <space>?[^\s\p{L}\p{N}]+[\r\n]*
    CptFlags f2 = (cpt == ' ') ? s.Flags(pos + 1) : flags;
    auto is_other = [](CptFlags f) {
      return !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.any();
    };
    if (!(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && flags.any()) {
      pos += (cpt == ' ');
      while (is_other(f2)) f2 = s.Flags(++pos);
      uint32_t c2 = s.Cpt(pos);
      while (c2 == '\r' || c2 == '\n') c2 = s.Cpt(++pos);
      add(pos);
      continue;
    }

    size_t num_ws = 0;
    size_t last_end_rn = 0;
    while (s.Flags(pos + num_ws).is_whitespace()) {
      const uint32_t c2 = s.Cpt(pos + num_ws);
      if (c2 == '\r' || c2 == '\n') last_end_rn = pos + num_ws + 1;
      ++num_ws;
    }
    if (last_end_rn > 0) {  // \s*[\r\n]+
      pos = last_end_rn;
      add(pos);
      continue;
    }
    if (num_ws > 1 && s.Cpt(pos + num_ws) != kOutOfRange) {  // \s+(?!\S)
      pos += num_ws - 1;
      add(pos);
      continue;
    }
    if (num_ws > 0) {  // \s+
      pos += num_ws;
      add(pos);
      continue;
    }
    add(++pos);
  }
}

constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr const char* kLlama3Pattern1 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kLlama3Pattern2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// \p{..} names llama.cpp understands in regexes, and the category each collapses to.
const std::map<std::string, uint16_t>& CategoryNames() {
  static const std::map<std::string, uint16_t> m = {
      {"\\p{N}", CptFlags::kNumber},      {"\\p{L}", CptFlags::kLetter},
      {"\\p{P}", CptFlags::kPunctuation}, {"\\p{M}", CptFlags::kAccentMark},
      {"\\p{S}", CptFlags::kSymbol},      {"\\p{Lu}", CptFlags::kLetter},
      {"\\p{Ll}", CptFlags::kLetter},     {"\\p{Lt}", CptFlags::kLetter},
      {"\\p{Lm}", CptFlags::kLetter},     {"\\p{Lo}", CptFlags::kLetter},
  };
  return m;
}

// In the collapsed text every non-ASCII code point is replaced by one byte standing for its
// category.
char CollapsedByte(uint16_t category) {
  switch (category) {
    case CptFlags::kNumber:
      return static_cast<char>(0xD1);
    case CptFlags::kLetter:
      return static_cast<char>(0xD2);
    case CptFlags::kPunctuation:
      return static_cast<char>(0xD3);
    case CptFlags::kAccentMark:
      return static_cast<char>(0xD4);
    case CptFlags::kSymbol:
      return static_cast<char>(0xD5);
    default:
      return static_cast<char>(0xD0);
  }
}

// The ASCII members of each category, as a bracket-expression body.
const char* AsciiClass(uint16_t category) {
  switch (category) {
    case CptFlags::kNumber:
      return "\x30-\x39";
    case CptFlags::kLetter:
      return "\x41-\x5A\x61-\x7A";
    case CptFlags::kPunctuation:
      return "\x21-\x23\x25-\x2A\x2C-\x2F\x3A-\x3B\x3F-\x40\\\x5B-\\\x5D\x5F\\\x7B\\\x7D";
    case CptFlags::kSymbol:
      return "\\\x24\\\x2B\x3C-\x3E\x5E\x60\\\x7C";
    default:
      return "";
  }
}

bool UsesCategories(const std::string& pattern) {
  for (const auto& [name, cat] : CategoryNames()) {
    if (pattern.find(name) != std::string::npos) return true;
  }
  return false;
}

// Rewrites \p{X} into a bracket expression over the collapsed alphabet.
std::string CollapsePattern(const std::string& re) {
  for (unsigned char c : re) {
    if (c >= 128)
      throw std::runtime_error("regex mixes unicode categories and non-ASCII characters");
  }
  std::string out;
  bool inside = false;
  for (size_t i = 0; i < re.size(); ++i) {
    if (re[i] == '[' && (i == 0 || re[i - 1] != '\\')) {
      out += '[';
      inside = true;
      continue;
    }
    if (inside && re[i] == ']' && re[i - 1] != '\\') {
      out += ']';
      inside = false;
      continue;
    }
    if (re[i] == '\\' && i + 3 < re.size() && re[i + 1] == 'p' && re[i + 2] == '{') {
      const size_t close = re.find('}', i + 3);
      if (close != std::string::npos && close <= i + 10) {
        auto it = CategoryNames().find(re.substr(i, close - i + 1));
        if (it != CategoryNames().end()) {
          if (!inside) out += '[';
          out += CollapsedByte(it->second);
          out += AsciiClass(it->second);
          if (!inside) out += ']';
          i = close;
          continue;
        }
      }
    }
    out += re[i];
  }
  return out;
}

template <typename CharT>
std::vector<size_t> RegexResplit(const std::basic_string<CharT>& text,
                                 const std::basic_regex<CharT>& expr,
                                 const std::vector<size_t>& offsets) {
  std::vector<size_t> out;
  out.reserve(offsets.size());
  size_t start = 0;
  for (size_t len : offsets) {
    std::regex_iterator<const CharT*> it(text.data() + start, text.data() + start + len, expr);
    std::regex_iterator<const CharT*> end;
    int64_t start_idx = 0;
    for (; it != end; ++it) {
      const auto& m = *it;
      if (m.position() > start_idx) out.push_back(m.position() - start_idx);
      out.push_back(m.length());
      start_idx = m.position() + m.length();
    }
    if (start_idx < static_cast<int64_t>(len)) out.push_back(len - start_idx);
    start += len;
  }
  return out;
}

}  // namespace

CptFlags FlagsOf(uint32_t cpt) {
  // llama.cpp: code points past the table are "undefined" (only out-of-segment positions have no
  // flags).
  if (cpt >= kMaxCodepoints) return CptFlags{CptFlags::kUndefined};
  return CptFlags{FlagTable()[cpt]};
}

uint32_t ToLower(uint32_t cpt) {
  if (cpt >= kMaxCodepoints) return cpt;
  return static_cast<uint32_t>(u_tolower(static_cast<UChar32>(cpt)));
}

uint32_t NfdFirst(uint32_t cpt) {
  if (cpt >= kMaxCodepoints) return cpt;
  UErrorCode status = U_ZERO_ERROR;
  static const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(status);
  if (nfd == nullptr) return cpt;
  icu::UnicodeString decomposition;
  if (!nfd->getDecomposition(static_cast<UChar32>(cpt), decomposition) || decomposition.isEmpty())
    return cpt;
  return static_cast<uint32_t>(decomposition.char32At(0));
}

size_t Utf8Len(char first_byte) {
  static constexpr size_t kLookup[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLookup[static_cast<uint8_t>(first_byte) >> 4];
}

std::vector<uint32_t> DecodeUtf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  auto cont = [&](size_t i) { return (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80; };
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t b0 = static_cast<uint8_t>(s[i]);
    if (!(b0 & 0x80)) {
      out.push_back(b0);
      i += 1;
    } else if (!(b0 & 0x40)) {
      out.push_back(kReplacementChar);
      i += 1;
    } else if (!(b0 & 0x20)) {
      if (i + 1 >= s.size() || !cont(i + 1)) {
        out.push_back(kReplacementChar);
        i += 1;
      } else {
        out.push_back(((b0 & 0x1F) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3F));
        i += 2;
      }
    } else if (!(b0 & 0x10)) {
      if (i + 2 >= s.size() || !cont(i + 1) || !cont(i + 2)) {
        out.push_back(kReplacementChar);
        i += 1;
      } else {
        out.push_back(((b0 & 0x0F) << 12) | ((static_cast<uint8_t>(s[i + 1]) & 0x3F) << 6) |
                      (static_cast<uint8_t>(s[i + 2]) & 0x3F));
        i += 3;
      }
    } else if (!(b0 & 0x08)) {
      if (i + 3 >= s.size() || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) {
        out.push_back(kReplacementChar);
        i += 1;
      } else {
        out.push_back(((b0 & 0x07) << 18) | ((static_cast<uint8_t>(s[i + 1]) & 0x3F) << 12) |
                      ((static_cast<uint8_t>(s[i + 2]) & 0x3F) << 6) |
                      (static_cast<uint8_t>(s[i + 3]) & 0x3F));
        i += 4;
      }
    } else {
      out.push_back(kReplacementChar);
      i += 1;
    }
  }
  return out;
}

void AppendUtf8(uint32_t cpt, std::string* out) {
  if (cpt <= 0x7F) {
    out->push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out->push_back(static_cast<char>(0xC0 | ((cpt >> 6) & 0x1F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out->push_back(static_cast<char>(0xE0 | ((cpt >> 12) & 0x0F)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0x10FFFF) {
    out->push_back(static_cast<char>(0xF0 | ((cpt >> 18) & 0x07)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    AppendUtf8(kReplacementChar, out);
  }
}

std::string EncodeUtf8(uint32_t cpt) {
  std::string s;
  AppendUtf8(cpt, &s);
  return s;
}

const std::string& ByteToUtf8(uint8_t byte) { return GetByteMaps().byte_to_utf8[byte]; }

int Utf8ToByte(std::string_view utf8) {
  const auto& m = GetByteMaps().utf8_to_byte;
  auto it = m.find(std::string(utf8));
  return it == m.end() ? -1 : it->second;
}

// ---------------------------------------------------------------------------------------------------------

struct RegexSplitter::Compiled {
  enum Kind { kGpt2, kLlama3, kCollapsed, kWide } kind = kGpt2;
  std::regex narrow;
  std::wregex wide;
};

RegexSplitter::RegexSplitter(std::vector<std::string> patterns) : patterns_(std::move(patterns)) {
  // optimize|nosubs as llama.cpp; no grammar flag means ECMAScript.
  constexpr auto kFlags = std::regex_constants::optimize | std::regex_constants::nosubs;
  for (const std::string& p : patterns_) {
    if (UsesCategories(p)) need_collapse_ = true;
  }
  for (const std::string& p : patterns_) {
    Compiled c;
    if (p == kGpt2Pattern) {
      c.kind = Compiled::kGpt2;
    } else if (p == kLlama3Pattern1 || p == kLlama3Pattern2) {
      c.kind = Compiled::kLlama3;
    } else if (UsesCategories(p)) {
      c.kind = Compiled::kCollapsed;
      c.narrow = std::regex(CollapsePattern(p), kFlags);
    } else {
      c.kind = Compiled::kWide;
      std::wstring wp;
      for (uint32_t cpt : DecodeUtf8(p)) wp.push_back(static_cast<wchar_t>(cpt));
      c.wide = std::wregex(wp, kFlags);
    }
    compiled_.push_back(std::move(c));
  }
}

RegexSplitter::~RegexSplitter() = default;
RegexSplitter::RegexSplitter(RegexSplitter&&) noexcept = default;
RegexSplitter& RegexSplitter::operator=(RegexSplitter&&) noexcept = default;

std::vector<std::string> RegexSplitter::Split(std::string_view text) const {
  const std::vector<uint32_t> cpts = DecodeUtf8(text);

  std::string collapsed;
  if (need_collapse_) {
    collapsed.resize(cpts.size());
    for (size_t i = 0; i < cpts.size(); ++i) {
      if (cpts[i] < 128) {
        collapsed[i] = static_cast<char>(cpts[i]);
        continue;
      }
      const CptFlags f = FlagsOf(cpts[i]);
      // std::regex's \s does not match U+0085 etc.; vertical tab stands in for any non-ASCII
      // whitespace.
      collapsed[i] = f.is_whitespace() ? '\x0B' : CollapsedByte(f.category());
    }
  }
  std::wstring wtext;
  bool have_wtext = false;

  std::vector<size_t> offsets = {cpts.size()};
  for (const Compiled& c : compiled_) {
    switch (c.kind) {
      case Compiled::kGpt2:
      case Compiled::kLlama3: {
        std::vector<size_t> next;
        next.reserve(offsets.size());
        size_t start = 0;
        for (size_t len : offsets) {
          const Segment seg{cpts, start, start + len};
          if (c.kind == Compiled::kGpt2) {
            SplitGpt2(seg, &next);
          } else {
            SplitLlama3(seg, &next);
          }
          start += len;
        }
        offsets = std::move(next);
        break;
      }
      case Compiled::kCollapsed:
        offsets = RegexResplit(collapsed, c.narrow, offsets);
        break;
      case Compiled::kWide:
        if (!have_wtext) {
          wtext.resize(cpts.size());
          for (size_t i = 0; i < cpts.size(); ++i) {
            const uint32_t cpt = cpts[i];
            wtext[i] =
                (cpt > 0x7F && FlagsOf(cpt).is_whitespace()) ? L'\x0B' : static_cast<wchar_t>(cpt);
          }
          have_wtext = true;
        }
        offsets = RegexResplit(wtext, c.wide, offsets);
        break;
    }
  }

  std::vector<std::string> words;
  words.reserve(offsets.size());
  size_t start = 0;
  for (size_t len : offsets) {
    std::string w;
    for (size_t i = start; i < start + len; ++i) AppendUtf8(cpts[i], &w);
    words.push_back(std::move(w));
    start += len;
  }
  return words;
}

}  // namespace si::unicode
