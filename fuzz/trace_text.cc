// libFuzzer target: the text parser on arbitrary bytes. It must never crash; an error names a
// line and column inside the text and says something; a trace that parses prints to text that
// parses back to the same trace (print/parse identity).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sim/trace/trace.h"

namespace {
[[noreturn]] void fail(const std::string& why, std::string_view text) {
  std::fprintf(stderr, "==tdxfuzz== trace_text: %s\n==tdxfuzz== input:\n%.*s\n", why.c_str(),
               static_cast<int>(text.size()), text.data());
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  trace::ParseError err;
  const auto t = trace::parse(text, &err);
  if (!t) {
    int lines = 1;
    for (char c : text) lines += c == '\n';
    if (err.message.empty()) fail("a parse error without a message", text);
    if (err.line < 1 || err.line > lines || err.column < 1)
      fail("parse error position " + std::to_string(err.line) + ":" + std::to_string(err.column) +
               " outside the text: " + err.message,
           text);
    return 0;
  }
  const std::string printed = trace::print(*t);
  trace::ParseError err2;
  const auto again = trace::parse(printed, &err2);
  if (!again)
    fail("the printed trace does not parse (" + std::to_string(err2.line) + ":" +
             std::to_string(err2.column) + ": " + err2.message + "):\n" + printed,
         text);
  if (!(*again == *t)) fail("print then parse is not the identity; printed:\n" + printed, text);
  return 0;
}
