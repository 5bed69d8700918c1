// Tokenizers equal to llama.cpp's (src/llama-vocab.cpp + src/unicode.cpp, early-2025 semantics).
//
// Library choice: ICU (libicu-dev, Debian 12: ICU 72 / Unicode 15.0) for all Unicode character
// data: general categories (u_charType), the White_Space property (u_isUWhiteSpace), simple
// lowercase (u_tolower) and canonical decompositions (Normalizer2 NFD). llama.cpp derives its own
// tables from the same UCD files (UnicodeData.txt + unicodedata NFD), so ICU gives the same answers
// without hand-written tables; it is a single, well-maintained Debian package and one library
// covers every property we need. Regexes: NOT PCRE2. llama.cpp runs the pre-tokenizer patterns
// through (a) hand-written splitters for the GPT-2 and LLaMA-3 patterns, (b) std::regex over a
// "collapsed" text where each non-ASCII code point is replaced by one byte naming its category (for
// patterns with \p{..}), and (c) std::wregex otherwise. The quirks of that scheme (e.g. a non-ASCII
// letter in a collapsed text only matches \p{L}, never a literal; \s matching only what
// std::regex's ctype calls space) are part of the ids llama.cpp produces, so we run the same scheme
// with the same standard library engine (unicode.cc) rather than PCRE2, whose results would differ
// on exactly those edges.
#include "si/model/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <map>
#include <queue>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "model/unicode.h"
#include "si/base/check.h"

namespace si {
namespace {

// llama_token_attr bits.
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1 << 0,
  kAttrUnused = 1 << 1,
  kAttrNormal = 1 << 2,
  kAttrControl = 1 << 3,
  kAttrUserDefined = 1 << 4,
  kAttrByte = 1 << 5,
  kAttrNormalized = 1 << 6,
  kAttrLstrip = 1 << 7,
  kAttrRstrip = 1 << 8,
};

enum class VocabKind { kSpm, kBpe, kWpm };

constexpr const char* kEscapedSpace = "\xE2\x96\x81";  // U+2581

// ---------------------------------------------------------------------------------------------------------
// Pre-tokenizer table: tokenizer.ggml.pre -> patterns and flags (llama.cpp's llm_tokenizer_bpe +
// load()).

constexpr const char* kReGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr const char* kReLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kReQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kRePoro = " ?[^(\\s|.,!?…。，、।۔،)]+";

struct PreTokenizer {
  std::vector<std::string> patterns;
  bool clean_spaces = true;
  bool ignore_merges = false;
  int force_add_bos = -1;     // 1: add_bos = true before the GGUF key is read
  bool clear_bos_id = false;  // chatglm: no default BOS
};

// Returns false for an unknown name.
bool LookupPreTokenizer(const std::string& pre, PreTokenizer* out) {
  const std::vector<std::string> kDefault = {"[\\p{P}\\$\\+<=>\\^~\\|]+", kReGpt2, "\\p{N}+",
                                             "[0-9][0-9][0-9]"};
  const std::vector<std::string> kStarcoder = {"\\p{N}", kReGpt2};
  const std::vector<std::string> kGpt2 = {kReGpt2};
  PreTokenizer p;
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names) {
      if (pre == n) return true;
    }
    return false;
  };
  if (pre.empty() || pre == "default") {
    p.patterns = kDefault;
  } else if (is({"llama3", "llama-v3", "llama-bpe", "falcon3"})) {
    p.patterns = {kReLlama3};
    p.ignore_merges = true;
    p.force_add_bos = 1;
  } else if (pre == "deepseek-llm") {
    p.patterns = {
        "[\r\n]",
        "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-"
        "\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-"
        "\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-"
        "\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-"
        "\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-"
        "\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-"
        "\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-"
        "\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-"
        "\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-"
        "\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-"
        "\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F\U000104B0-"
        "\U000104D3\U000104D8-\U000104FB\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-"
        "\U000118DF\U0001E900-\U0001E943]+",
        "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
        "\\s+$",
        "[一-龥ࠀ-一가-퟿]+",
        "\\p{N}+",
    };
    p.clean_spaces = false;
  } else if (pre == "deepseek-coder") {
    p.patterns = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
    p.clean_spaces = false;
  } else if (pre == "deepseek-v3") {
    p.patterns = {
        "\\p{N}{1,3}",
        "[一-龥぀-ゟ゠-ヿ]+",
        "[!\"#$%&'()*+,\\-./"
        ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
        "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    };
    p.clean_spaces = false;
  } else if (pre == "falcon") {
    p.patterns = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kReGpt2, "[0-9][0-9][0-9]"};
  } else if (pre == "mpt" || pre == "olmo" || pre == "jais") {
    p.patterns = kGpt2;
  } else if (is({"starcoder", "refact", "codeshell", "exaone", "minerva-7b"})) {
    p.patterns = kStarcoder;
  } else if (is({"command-r", "smollm"})) {
    p.patterns = kStarcoder;
    p.clean_spaces = false;
  } else if (is({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es",
                 "jina-v2-de", "jina-v2-code", "roberta-bpe"})) {
    p.patterns = kGpt2;
  } else if (pre == "qwen2") {
    p.patterns = {kReQwen2};
    p.clean_spaces = false;
  } else if (pre == "megrez" || pre == "stablelm2") {
    p.patterns = {kReQwen2};
  } else if (pre == "dbrx" || pre == "smaug-bpe") {
    p.patterns = {kReLlama3};
  } else if (pre == "poro-chat") {
    p.patterns = {kRePoro};
    p.clean_spaces = false;
  } else if (pre == "bloom" || pre == "gpt3-finnish") {
    p.patterns = {kRePoro};
  } else if (pre == "chatglm-bpe") {
    p.patterns = {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
        "\\p{N}{1,3}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
    p.clear_bos_id = true;
  } else if (pre == "viking") {
    p.patterns = {kRePoro, "\\p{N}"};
    p.clean_spaces = false;
  } else if (pre == "tekken") {
    p.patterns = {
        "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]"
        "?((?=[\\p{L}])(["
        "^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
    p.clean_spaces = false;
    p.ignore_merges = true;
    p.force_add_bos = 1;
  } else if (pre == "chameleon") {
    p.patterns = {"<sentinel:[0-9]+>",      "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
                  "([\\t\\n]|    |  )",     "\\p{N}",
                  "[\\p{P}!-/:-@\\[-`{-~]", kReGpt2};
    p.force_add_bos = 1;
    p.clean_spaces = false;
  } else {
    return false;
  }
  *out = std::move(p);
  return true;
}

struct TokenData {
  std::string text;
  float score = 0.0f;
  uint32_t attr = kAttrNormal;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  VocabKind kind = VocabKind::kSpm;
  std::string model;
  std::string pre;

  std::vector<TokenData> id_to_token;
  // Same container, insertion order and key set as llama.cpp's token_to_id: some of llama.cpp's
  // special token detection takes the first match in this map's iteration order.
  std::unordered_map<std::string, int32_t> token_to_id;
  std::unordered_map<std::string, int32_t> bpe_ranks;  // "left right" -> rank
  int max_token_len = 0;

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, sep = -1, pad = -1, mask = -1;
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;

  bool add_space_prefix = false;
  bool add_bos = false;
  bool add_eos = false;
  bool ignore_merges = false;
  bool clean_spaces = false;
  bool remove_extra_whitespaces = false;

  std::set<int32_t> eog_ids;
  std::vector<int32_t> special_tokens;  // CONTROL | USER_DEFINED | UNKNOWN, longest text first
  std::unique_ptr<unicode::RegexSplitter> splitter;

  int32_t Find(const std::string& text) const {
    auto it = token_to_id.find(text);
    return it == token_to_id.end() ? -1 : it->second;
  }
  int Rank(const std::string& left, const std::string& right) const {
    auto it = bpe_ranks.find(left + " " + right);
    return it == bpe_ranks.end() ? -1 : it->second;
  }
  int32_t ByteToToken(uint8_t ch) const {
    static const char* kHex = "0123456789ABCDEF";
    if (kind == VocabKind::kSpm) {
      const char buf[7] = {'<', '0', 'x', kHex[ch >> 4], kHex[ch & 15], '>', 0};
      int32_t id = Find(buf);
      if (id >= 0) return id;
      id = Find(std::string(1, static_cast<char>(ch)));
      return id >= 0 ? id : unk;  // llama.cpp would throw here; unknown is the safe equivalent
    }
    const int32_t id = Find(unicode::ByteToUtf8(ch));
    return id >= 0 ? id : unk;
  }

  struct Fragment {
    bool is_token;
    int32_t token;
    size_t offset, length;
  };
  std::vector<Fragment> Partition(const std::string& text, bool parse_special) const;

  void TokenizeSpm(const std::string& text, std::vector<int32_t>* out) const;
  void TokenizeBpe(const std::string& text, std::vector<int32_t>* out) const;
  void TokenizeWpm(const std::string& text, std::vector<int32_t>* out) const;
  std::vector<int32_t> Encode(const std::string& text, bool add_special, bool parse_special) const;
  std::string Piece(int32_t id, bool special) const;
};

// ---------------------------------------------------------------------------------------------------------
// Special-token partition (tokenizer_st_partition): for each special token, longest first, cut
// every occurrence out of the remaining raw-text fragments, honouring its lstrip/rstrip attributes.

std::vector<Tokenizer::Impl::Fragment> Tokenizer::Impl::Partition(const std::string& text,
                                                                  bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({false, -1, 0, text.size()});
  for (const int32_t sid : special_tokens) {
    const TokenData& data = id_to_token[sid];
    if (!parse_special && (data.attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string& st = data.text;
    std::vector<Fragment> next;
    next.reserve(frags.size());
    for (const Fragment& f : frags) {
      if (f.is_token) {
        next.push_back(f);
        continue;
      }
      size_t base = f.offset;
      size_t len = f.length;
      while (true) {
        const size_t match = std::string_view(text.data(), base + len).find(st, base);
        if (match == std::string_view::npos) {
          if (len > 0) next.push_back({false, -1, base, len});
          break;
        }
        if (match > base) {
          size_t left_len = match - base;
          if (data.attr & kAttrLstrip) {
            while (left_len > 0 &&
                   std::isspace(static_cast<unsigned char>(text[base + left_len - 1])))
              --left_len;
          }
          if (left_len > 0) next.push_back({false, -1, base, left_len});
        }
        next.push_back({true, sid, 0, 0});
        const size_t end = match + st.size();
        if (end >= base + len) break;
        size_t right_off = end;
        size_t right_len = base + len - end;
        if (data.attr & kAttrRstrip) {
          while (right_len > 0 && std::isspace(static_cast<unsigned char>(text[right_off]))) {
            ++right_off;
            --right_len;
          }
        }
        base = right_off;
        len = right_len;
      }
    }
    frags = std::move(next);
  }
  return frags;
}

// ---------------------------------------------------------------------------------------------------------
// SPM (llm_tokenizer_spm_session): start from UTF-8 characters, repeatedly merge the adjacent pair
// whose concatenation is the highest-scoring vocabulary entry (ties: leftmost), then emit tokens,
// re-splitting pieces that are not tokens along their merge history, down to byte tokens.

namespace {
struct Symbol {
  int prev;
  int next;
  const char* text;
  size_t n;
};
}  // namespace

void Tokenizer::Impl::TokenizeSpm(const std::string& text, std::vector<int32_t>* out) const {
  struct Bigram {
    int left, right;
    float score;
    size_t size;
  };
  struct Cmp {
    bool operator()(const Bigram& l, const Bigram& r) const {
      return l.score < r.score || (l.score == r.score && l.left > r.left);
    }
  };
  std::vector<Symbol> symbols;
  std::priority_queue<Bigram, std::vector<Bigram>, Cmp> queue;
  std::map<std::string, std::pair<int, int>> rev_merge;

  int index = 0;
  size_t offs = 0;
  while (offs < text.size()) {
    Symbol sym;
    const size_t len = unicode::Utf8Len(text[offs]);
    sym.text = text.c_str() + offs;
    sym.n = std::min(len, text.size() - offs);
    offs += sym.n;
    sym.prev = index - 1;
    sym.next = offs == text.size() ? -1 : index + 1;
    ++index;
    symbols.push_back(sym);
  }

  auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const std::string s(symbols[left].text, symbols[left].n + symbols[right].n);
    const int32_t id = Find(s);
    if (id < 0 || id >= static_cast<int32_t>(id_to_token.size())) return;
    queue.push({left, right, id_to_token[id].score, s.size()});
    rev_merge[s] = {left, right};
  };

  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  std::function<void(const Symbol&)> resegment = [&](const Symbol& sym) {
    const std::string s(sym.text, sym.n);
    const int32_t id = Find(s);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
    auto it = rev_merge.find(s);
    if (it == rev_merge.end()) {
      for (size_t j = 0; j < sym.n; ++j)
        out->push_back(ByteToToken(static_cast<uint8_t>(sym.text[j])));
      return;
    }
    resegment(symbols[it->second.first]);
    resegment(symbols[it->second.second]);
  };
  if (symbols.empty()) return;
  for (int i = 0; i != -1; i = symbols[i].next) resegment(symbols[i]);
}

// ---------------------------------------------------------------------------------------------------------
// Byte-level BPE (llm_tokenizer_bpe_session): pre-tokenize into words, byte-encode each word, then
// merge adjacent symbols by lowest merge rank (ties: leftmost).

void Tokenizer::Impl::TokenizeBpe(const std::string& text, std::vector<int32_t>* out) const {
  struct Bigram {
    int left, right;
    std::string text;
    int rank;
  };
  struct Cmp {
    bool operator()(const Bigram& l, const Bigram& r) const {
      return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
    }
  };

  const std::vector<std::string> raw_words = splitter->Split(text);
  std::vector<std::string> words;
  words.reserve(raw_words.size());
  for (const std::string& w : raw_words) {
    std::string enc;
    for (char c : w) enc += unicode::ByteToUtf8(static_cast<uint8_t>(c));
    words.push_back(std::move(enc));
  }

  for (const std::string& word : words) {
    std::vector<Symbol> symbols;
    std::priority_queue<Bigram, std::vector<Bigram>, Cmp> queue;
    size_t offset = 0;
    int index = 0;
    if (ignore_merges && Find(word) >= 0) {
      symbols.push_back({-1, -1, word.c_str(), word.size()});
      offset = word.size();
    }
    while (offset < word.size()) {
      Symbol sym;
      const size_t len = std::min(word.size() - offset, unicode::Utf8Len(word[offset]));
      sym.text = word.c_str() + offset;
      sym.n = len;
      offset += len;
      sym.prev = index - 1;
      sym.next = offset == word.size() ? -1 : index + 1;
      ++index;
      symbols.push_back(sym);
    }
    auto add_bigram = [&](int left, int right) {
      if (left == -1 || right == -1) return;
      std::string lt(symbols[left].text, symbols[left].n);
      std::string rt(symbols[right].text, symbols[right].n);
      const int rank = Rank(lt, rt);
      if (rank < 0) return;
      queue.push({left, right, lt + rt, rank});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_bigram(i - 1, i);

    while (!queue.empty()) {
      Bigram b = queue.top();
      queue.pop();
      Symbol& l = symbols[b.left];
      Symbol& r = symbols[b.right];
      if (l.n == 0 || r.n == 0) continue;
      if (std::string(l.text, l.n) + std::string(r.text, r.n) != b.text) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) symbols[r.next].prev = b.left;
      add_bigram(l.prev, b.left);
      add_bigram(b.left, l.next);
    }

    for (const Symbol& sym : symbols) {
      if (sym.n == 0) continue;
      const std::string s(sym.text, sym.n);
      const int32_t id = Find(s);
      if (id >= 0) {
        out->push_back(id);
        continue;
      }
      for (char c : s) {  // as llama.cpp: single bytes of the encoded text that happen to be tokens
        const int32_t bid = Find(std::string(1, c));
        if (bid >= 0) out->push_back(bid);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// WordPiece (llm_tokenizer_wpm_session): normalize (first code point of NFD, lowercase, drop
// controls), split on whitespace, punctuation, ASCII symbols and CJK ideographs, then greedy
// longest-match with the word-initial pieces stored as "▁word" and continuations as plain text.

namespace {
bool IsChineseChar(uint32_t c) {
  return (c >= 0x04E00 && c <= 0x09FFF) || (c >= 0x03400 && c <= 0x04DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) ||
         (c >= 0x2B920 &&
          c <= 0x2CEAF) ||  // 0x2B820 in Unicode; 0x2B920 in HF tokenizers and llama.cpp
         (c >= 0x0F900 && c <= 0x0FAFF) ||
         (c >= 0x2F800 && c <= 0x2FA1F);
}

std::vector<std::string> WpmPreprocess(const std::string& text) {
  std::vector<std::string> words(1);
  for (uint32_t cpt : unicode::DecodeUtf8(text)) {
    cpt = unicode::NfdFirst(cpt);
    const unicode::CptFlags flags = unicode::FlagsOf(cpt);
    if (flags.is_whitespace()) {
      if (!words.back().empty()) words.emplace_back();
      continue;
    }
    if (cpt == 0 || cpt == unicode::kReplacementChar || flags.is_control()) continue;
    const std::string s = unicode::EncodeUtf8(unicode::ToLower(cpt));
    if (flags.is_punctuation() || (cpt < 0x7F && flags.is_symbol()) || IsChineseChar(cpt)) {
      if (!words.back().empty()) words.emplace_back();
      words.back() = s;
      words.emplace_back();
    } else {
      words.back() += s;
    }
  }
  if (words.back().empty()) words.pop_back();
  return words;
}
}  // namespace

void Tokenizer::Impl::TokenizeWpm(const std::string& text, std::vector<int32_t>* out) const {
  for (const std::string& word : WpmPreprocess(text)) {
    if (word.empty()) continue;
    const std::string w = kEscapedSpace + word;
    const int n = static_cast<int>(w.size());
    const size_t before = out->size();
    for (int i = 0; i < n; ++i) {
      bool match = false;
      for (int j = std::min(n, i + max_token_len + 1); j > i; --j) {
        const int32_t id = Find(w.substr(i, j - i));
        if (id >= 0) {
          out->push_back(id);
          match = true;
          i = j - 1;
          break;
        }
      }
      if (!match) {
        out->resize(before);
        break;
      }
    }
    if (out->size() == before) out->push_back(unk);
  }
}

// ---------------------------------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::Impl::Encode(const std::string& text, bool add_special,
                                             bool parse_special) const {
  std::vector<int32_t> out;
  const std::vector<Fragment> frags = Partition(text, parse_special);
  switch (kind) {
    case VocabKind::kSpm: {
      bool prev_special = true;  // the first fragment gets the space prefix
      if (add_special && add_bos && bos >= 0) out.push_back(bos);
      for (const Fragment& f : frags) {
        if (f.is_token) {
          out.push_back(f.token);
          prev_special = true;
          continue;
        }
        std::string s;
        if (add_space_prefix && prev_special) s = " ";
        s.append(text, f.offset, f.length);
        std::string escaped;
        escaped.reserve(s.size() * 2);
        for (char c : s) {
          if (c == ' ') {
            escaped += kEscapedSpace;
          } else {
            escaped += c;
          }
        }
        TokenizeSpm(escaped, &out);
        prev_special = false;
      }
      if (add_special && add_eos && eos >= 0) out.push_back(eos);
      break;
    }
    case VocabKind::kBpe: {
      if (add_special && add_bos && bos >= 0) out.push_back(bos);
      for (const Fragment& f : frags) {
        if (f.is_token) {
          out.push_back(f.token);
        } else {
          TokenizeBpe(text.substr(f.offset, f.length), &out);
        }
      }
      if (add_special && add_eos && eos >= 0) out.push_back(eos);
      break;
    }
    case VocabKind::kWpm: {
      // llama.cpp adds CLS (its BOS) and SEP for BERT vocabularies whenever add_special is set.
      if (add_special && bos >= 0) out.push_back(bos);
      for (const Fragment& f : frags) {
        if (f.is_token) {
          out.push_back(f.token);
        } else {
          TokenizeWpm(text.substr(f.offset, f.length), &out);
        }
      }
      if (add_special && sep >= 0) out.push_back(sep);
      break;
    }
  }
  return out;
}

// llama_token_to_piece with lstrip = 0.
std::string Tokenizer::Impl::Piece(int32_t id, bool special) const {
  if (id < 0 || id >= static_cast<int32_t>(id_to_token.size())) return "";
  const TokenData& t = id_to_token[id];
  const uint32_t attr_special = kAttrUnknown | kAttrControl;
  if (!special && (t.attr & attr_special)) return "";
  if (t.attr & (attr_special | kAttrUserDefined)) return t.text;
  if (kind == VocabKind::kBpe) {
    if (t.attr & kAttrNormal) {
      std::string out;
      for (uint32_t cpt : unicode::DecodeUtf8(t.text)) {
        const std::string utf8 = unicode::EncodeUtf8(cpt);
        const int byte = unicode::Utf8ToByte(utf8);
        if (byte >= 0) {
          out.push_back(static_cast<char>(byte));
        } else {  // llama.cpp's marker for a character outside the byte map
          out += "[UNK_BYTE_0x";
          for (unsigned char c : utf8) {
            static const char* kHex = "0123456789abcdef";
            out += kHex[c >> 4];
            out += kHex[c & 15];
          }
          out += t.text + "]";
        }
      }
      return out;
    }
    if ((t.attr & kAttrByte) && t.text.size() >= 5) {
      return std::string(1,
                         static_cast<char>(std::strtol(t.text.substr(3, 2).c_str(), nullptr, 16)));
    }
    return "";
  }
  if (t.attr & kAttrNormal) {
    std::string out;
    const std::string_view esc = kEscapedSpace;
    for (size_t i = 0; i < t.text.size();) {
      if (t.text.compare(i, esc.size(), esc) == 0) {
        out += ' ';
        i += esc.size();
      } else {
        out += t.text[i++];
      }
    }
    return out;
  }
  if ((t.attr & kAttrByte) && t.text.size() >= 5) {
    return std::string(1, static_cast<char>(std::strtol(t.text.substr(3, 2).c_str(), nullptr, 16)));
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromVocab(TokenizerVocab v) {
  auto impl = std::make_unique<Impl>();
  Impl& t = *impl;
  t.model = v.model;
  PreTokenizer pre;
  if (v.model == "llama") {
    t.kind = VocabKind::kSpm;
    t.bos = 1;
    t.eos = 2;
    t.unk = 0;
    t.add_space_prefix = true;
    t.add_bos = true;
    t.add_eos = false;
    t.clean_spaces = false;
    t.pre = "default";
  } else if (v.model == "bert") {
    t.kind = VocabKind::kWpm;
    t.bos = 101;
    t.unk = 100;
    t.sep = 102;
    t.pad = 0;
    t.mask = 103;
    t.add_space_prefix = false;
    t.clean_spaces = true;
    t.add_bos = true;
    t.add_eos = false;
    t.pre = "default";
  } else if (v.model == "gpt2") {
    t.kind = VocabKind::kBpe;
    t.bos = 11;
    t.eos = 11;
    t.add_space_prefix = false;
    if (!LookupPreTokenizer(v.pre, &pre)) {
      return UnsupportedError(
          "unknown tokenizer.ggml.pre '", v.pre,
          "' (known: default, gpt-2, falcon, mpt, starcoder, deepseek-llm, deepseek-coder, "
          "deepseek-v3, llama3/llama-bpe, qwen2, ... as in llama.cpp)");
    }
    t.pre = v.pre.empty() ? "default" : v.pre;
    t.clean_spaces = pre.clean_spaces;
    t.ignore_merges = pre.ignore_merges;
    if (pre.force_add_bos == 1) t.add_bos = true;
    if (pre.clear_bos_id) t.bos = -1;
    // Merges: rank = index; split at the first space after position 0; the first occurrence wins.
    for (size_t i = 0; i < v.merges.size(); ++i) {
      const std::string& m = v.merges[i];
      const size_t pos = m.find(' ', 1);
      const std::string key = pos == std::string::npos ? std::string(" ") : m;
      t.bpe_ranks.emplace(key, static_cast<int>(i));
    }
  } else if (v.model.empty()) {
    return NotFoundError("tokenizer.ggml.model is missing");
  } else {
    return UnsupportedError("unknown tokenizer.ggml.model '", v.model,
                            "' (supported: llama, gpt2, bert)");
  }
  if (v.add_space_prefix >= 0) t.add_space_prefix = v.add_space_prefix != 0;
  if (v.remove_extra_whitespaces >= 0) t.remove_extra_whitespaces = v.remove_extra_whitespaces != 0;

  if (v.tokens.empty()) return NotFoundError("tokenizer.ggml.tokens is missing or empty");
  const size_t n = v.tokens.size();
  if (!v.scores.empty() && v.scores.size() < n) {
    return InvalidArgumentError("tokenizer.ggml.scores has ", v.scores.size(), " entries for ", n,
                                " tokens");
  }
  if (!v.token_types.empty() && v.token_types.size() < n) {
    return InvalidArgumentError("tokenizer.ggml.token_type has ", v.token_types.size(),
                                " entries for ", n, " tokens");
  }
  t.id_to_token.resize(n);
  for (size_t i = 0; i < n; ++i) {
    std::string word = v.tokens[i];
    if (word.empty()) word = "[EMPTY_" + std::to_string(i) + "]";
    t.token_to_id[word] = static_cast<int32_t>(i);
    t.max_token_len = std::max(t.max_token_len, static_cast<int>(word.size()));
    TokenData& d = t.id_to_token[i];
    d.text = std::move(word);
    d.score = v.scores.empty() ? 0.0f : v.scores[i];
    d.attr = kAttrNormal;
    if (!v.token_types.empty()) {
      switch (static_cast<TokenType>(v.token_types[i])) {
        case TokenType::kUnknown:
          d.attr = kAttrUnknown;
          break;
        case TokenType::kUnused:
          d.attr = kAttrUnused;
          break;
        case TokenType::kNormal:
          d.attr = kAttrNormal;
          break;
        case TokenType::kControl:
          d.attr = kAttrControl;
          break;
        case TokenType::kUserDefined:
          d.attr = kAttrUserDefined;
          break;
        case TokenType::kByte:
          d.attr = kAttrByte;
          break;
        default:
          d.attr = kAttrUndefined;
          break;
      }
    }
  }

  // Special ids from the file (ignored when out of range, as llama.cpp does).
  auto set_id = [&](int64_t from_file, int32_t* id) {
    if (from_file >= 0 && from_file < static_cast<int64_t>(n))
      *id = static_cast<int32_t>(from_file);
  };
  set_id(v.bos_id, &t.bos);
  set_id(v.eos_id, &t.eos);
  set_id(v.eot_id, &t.eot);
  set_id(v.eom_id, &t.eom);
  set_id(v.unk_id, &t.unk);
  set_id(v.sep_id, &t.sep);
  set_id(v.pad_id, &t.pad);
  set_id(v.mask_id, &t.mask);
  set_id(v.fim_pre_id, &t.fim_pre);
  set_id(v.fim_suf_id, &t.fim_suf);
  set_id(v.fim_mid_id, &t.fim_mid);
  set_id(v.fim_pad_id, &t.fim_pad);
  set_id(v.fim_rep_id, &t.fim_rep);
  set_id(v.fim_sep_id, &t.fim_sep);
  if (v.add_bos >= 0) t.add_bos = v.add_bos != 0;
  if (v.add_eos >= 0) t.add_eos = v.add_eos != 0;
  // Default ids past the end of a small vocabulary are not tokens.
  for (int32_t* id : {&t.bos, &t.eos, &t.unk, &t.sep, &t.pad, &t.mask}) {
    if (*id >= static_cast<int32_t>(n)) *id = -1;
  }

  // Detect special tokens by their text (llama.cpp's workaround for converters that do not set the
  // keys); every detected token is forced to CONTROL.
  struct Detect {
    int32_t* id;
    std::vector<std::string> names;
  };
  const std::vector<Detect> detect = {
      {&t.eot,
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
        "<｜end▁of▁sentence｜>"}},
      {&t.eom, {"<|eom_id|>"}},
      {&t.fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"}},
      {&t.fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"}},
      {&t.fim_mid, {"<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"}},
      {&t.fim_pad, {"<|fim_pad|>", "<fim-pad>", "<PAD>"}},
      {&t.fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}},
      {&t.fim_sep, {"<|file_sep|>"}},
  };
  auto force_control = [&](int32_t id) {
    if ((t.id_to_token[id].attr & kAttrControl) == 0) t.id_to_token[id].attr = kAttrControl;
  };
  for (const auto& [text, id] : t.token_to_id) {
    for (const Detect& d : detect) {
      if (*d.id != -1) continue;
      if (std::find(d.names.begin(), d.names.end(), text) != d.names.end()) {
        *d.id = id;
        force_control(id);
      }
    }
  }
  for (int32_t id : {t.fim_pad, t.fim_rep, t.fim_sep}) {
    if (id != -1) t.eog_ids.insert(id);
  }
  static const std::vector<std::string> kEogNames = {"<|eot_id|>",    "<|im_end|>",    "<|end|>",
                                                     "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
                                                     "<EOT>"};
  for (const auto& [text, id] : t.token_to_id) {
    if (std::find(kEogNames.begin(), kEogNames.end(), text) != kEogNames.end()) {
      t.eog_ids.insert(id);
      force_control(id);
    }
  }
  for (int32_t id : {t.eos, t.eot, t.eom}) {
    if (id != -1) t.eog_ids.insert(id);
  }

  // Special-token cache, longest text first (same sort call as llama.cpp, so equal lengths tie the
  // same way).
  for (int32_t id = 0; id < static_cast<int32_t>(n); ++id) {
    if (t.id_to_token[id].attr & (kAttrControl | kAttrUserDefined | kAttrUnknown))
      t.special_tokens.push_back(id);
  }
  std::sort(t.special_tokens.begin(), t.special_tokens.end(), [&](int32_t a, int32_t b) {
    return t.id_to_token[a].text.size() > t.id_to_token[b].text.size();
  });

  // Per-model attributes llama.cpp sets by name.
  {
    std::string name = v.general_name;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](char c) { return static_cast<char>(std::tolower(c)); });
    auto set_attr = [&](const std::string& text, uint32_t attr, bool value) {
      const int32_t id = t.Find(text);
      if (id < 0) return;
      uint32_t& a = t.id_to_token[id].attr;
      a = value ? (a | attr) : (a & ~attr);
    };
    const std::string& pre_name = v.pre;
    if (pre_name.find("jina-v2-de") != std::string::npos ||
        pre_name.find("jina-v2-es") != std::string::npos ||
        pre_name.find("jina-v2-code") != std::string::npos) {
      set_attr("<mask>", kAttrLstrip, true);
    } else if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
      for (int32_t id : t.special_tokens) t.id_to_token[id].attr |= kAttrRstrip;
      set_attr("</s>", kAttrRstrip, true);
      for (const char* s : {"<unk>", "<s>", "<|endoftext|>"}) set_attr(s, kAttrRstrip, false);
    }
  }

  if (t.kind == VocabKind::kBpe) {
    try {
      t.splitter = std::make_unique<unicode::RegexSplitter>(pre.patterns);
    } catch (const std::exception& e) {
      return InternalError("pre-tokenizer '", t.pre, "': cannot compile its regex: ", e.what());
    }
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  return impl_->Encode(std::string(text), add_special, parse_special);
}

std::string Tokenizer::TokenToPiece(int32_t id, bool special) const {
  return impl_->Piece(id, special);
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool remove_special,
                              bool unparse_special) const {
  const Impl& t = *impl_;
  bool remove_space = t.add_space_prefix;
  size_t begin = 0, end = ids.size();
  if (remove_special && t.add_bos && end > begin && ids[begin] == t.bos) {
    remove_space = false;
    ++begin;
  }
  if (remove_special && t.add_eos && end > begin && ids[end - 1] == t.eos) --end;
  std::string text;
  for (size_t i = begin; i < end; ++i) {
    std::string piece = t.Piece(ids[i], unparse_special);
    if (remove_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    remove_space = false;
    text += piece;
  }
  if (!t.clean_spaces || text.empty()) return text;

  // llama.cpp's three clean-up passes.
  std::string a;  // " ?", " !", " .", " ," lose the space
  a += text[0];
  for (size_t i = 1; i < text.size(); ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
    a += x;
  }
  std::string b;  // " ' " -> "'"
  b += a[0];
  for (size_t i = 1; i < a.size(); ++i) {
    const char x = a[i];
    if (x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
      b.pop_back();
      a[++i] = '\0';  // llama.cpp overwrites the next space in place and skips it
      b += x;
      continue;
    }
    b += x;
  }
  std::string c;  // " 's", " 'm", " 're", " 've" lose the space
  c += b[0];
  for (size_t i = 1; i < b.size(); ++i) {
    const char x = b[i];
    if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      if (x1 == 's' || x1 == 'm') {
        c.pop_back();
      } else if (x1 != 't' && x1 != 'd' && i + 2 < b.size()) {
        const char x2 = b[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) c.pop_back();
      }
    }
    c += x;
  }
  return c;
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_to_token.size()); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
int32_t Tokenizer::eot_id() const { return impl_->eot; }
int32_t Tokenizer::unk_id() const { return impl_->unk; }
int32_t Tokenizer::sep_id() const { return impl_->sep; }
int32_t Tokenizer::pad_id() const { return impl_->pad; }
bool Tokenizer::add_bos() const { return impl_->kind == VocabKind::kWpm ? true : impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
bool Tokenizer::IsEog(int32_t id) const { return id != -1 && impl_->eog_ids.count(id) > 0; }
bool Tokenizer::IsControl(int32_t id) const {
  return id >= 0 && id < vocab_size() && (impl_->id_to_token[id].attr & kAttrControl);
}
TokenType Tokenizer::token_type(int32_t id) const {
  SI_CHECK(id >= 0 && id < vocab_size());
  const uint32_t a = impl_->id_to_token[id].attr;
  if (a & kAttrUnknown) return TokenType::kUnknown;
  if (a & kAttrUnused) return TokenType::kUnused;
  if (a & kAttrControl) return TokenType::kControl;
  if (a & kAttrUserDefined) return TokenType::kUserDefined;
  if (a & kAttrByte) return TokenType::kByte;
  if (a & kAttrNormal) return TokenType::kNormal;
  return TokenType::kUndefined;
}
const std::string& Tokenizer::token_text(int32_t id) const {
  SI_CHECK(id >= 0 && id < vocab_size());
  return impl_->id_to_token[id].text;
}
int32_t Tokenizer::TextToToken(std::string_view text) const {
  return impl_->Find(std::string(text));
}
std::string_view Tokenizer::model_type() const { return impl_->model; }
std::string_view Tokenizer::pre_type() const { return impl_->pre; }

// ---------------------------------------------------------------------------------------------------------

std::string StreamDecoder::Push(int32_t id) {
  pending_ += tokenizer_.TokenToPiece(id, special_);
  // Hold back a trailing incomplete UTF-8 sequence.
  size_t keep = 0;
  const size_t n = pending_.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const unsigned char c = static_cast<unsigned char>(pending_[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    if (c >= 0xC0) {
      const size_t need = unicode::Utf8Len(static_cast<char>(c));
      if (need > back) keep = back;
    }
    break;
  }
  std::string out = pending_.substr(0, n - keep);
  pending_.erase(0, n - keep);
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace si
