// SI_CHECK: invariants of the program (not of its input). Failing one is a bug: it prints file:line and the
// message, then aborts. Input errors use Status (status.h).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace si::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* cond) {
    os_ << file << ":" << line << ": CHECK failed: " << cond << " ";
  }
  [[noreturn]] ~CheckFailure() {
    std::fprintf(stderr, "%s\n", os_.str().c_str());
    std::fflush(stderr);
    std::abort();
  }
  template <typename T>
  CheckFailure& operator<<(const T& v) {
    os_ << v;
    return *this;
  }

 private:
  std::ostringstream os_;
};

// Lets `SI_CHECK(x) << msg` compile to nothing when x holds.
struct Voidify {
  void operator&(const CheckFailure&) {}
};

}  // namespace si::internal

#define SI_CHECK(cond)                \
  (cond) ? (void)0                    \
         : ::si::internal::Voidify() & \
               ::si::internal::CheckFailure(__FILE__, __LINE__, #cond)

#define SI_CHECK_EQ(a, b) SI_CHECK((a) == (b)) << "(" << (a) << " vs " << (b) << ") "
#define SI_CHECK_LE(a, b) SI_CHECK((a) <= (b)) << "(" << (a) << " vs " << (b) << ") "
#define SI_CHECK_LT(a, b) SI_CHECK((a) < (b)) << "(" << (a) << " vs " << (b) << ") "

#ifdef NDEBUG
#define SI_DCHECK(cond) \
  while (false) SI_CHECK(cond)
#else
#define SI_DCHECK(cond) SI_CHECK(cond)
#endif
