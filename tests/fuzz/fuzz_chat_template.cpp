// libFuzzer entry point for chat templates: the untrusted template text of a model file goes through
// detect_chat_template, a format file through parse_custom_chat_format, and arbitrary conversations
// through render_chat for every family, so that none of them can crash, read out of bounds or loop.
// It checks one property as well: a custom format inserts every message's content verbatim. Not a
// test with expected values (those are tests/unit/test_chat_template.cpp). Input: the first byte picks
// the mode, the rest is text; in conversations 0x1e separates messages and 0x1f role from content.
// Seeds: the .jinja files of ../shared/fixtures/chat-templates. To fuzz one more entry point, add a mode.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "safeshrink/chat_template.h"

namespace {

std::vector<ss::ChatMessage> split_conversation(std::string_view text) {
  std::vector<ss::ChatMessage> out;
  while (!text.empty() && out.size() < 64) {
    const size_t end = std::min(text.find('\x1e'), text.size());
    const std::string_view record = text.substr(0, end);
    const size_t sep = record.find('\x1f');
    if (sep == std::string_view::npos) out.push_back({"user", std::string(record)});
    else out.push_back({std::string(record.substr(0, sep)), std::string(record.substr(sep + 1))});
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode % 3 == 0) {
    (void)ss::detect_chat_template(text);
  } else if (mode % 3 == 1) {
    // format text, 0x00, a conversation
    const size_t nul = std::min(text.find('\0'), text.size());
    const ss::Result<ss::CustomChatFormat> format = ss::parse_custom_chat_format(text.substr(0, nul));
    if (!format.ok()) return 0;
    const auto messages = split_conversation(text.substr(std::min(nul + 1, text.size())));
    const ss::Result<std::string> out = ss::render_custom_chat(*format, messages);
    if (out.ok())
      for (const auto& m : messages)
        if (out->find(m.content) == std::string::npos) __builtin_trap();  // a message went missing
  } else {
    const auto& families = ss::chat_family_registry();
    ss::ChatRenderOptions options;
    options.add_generation_prompt = (mode & 8) != 0;
    options.bos_token = "<s>";
    options.eos_token = "</s>";
    if (mode & 16) options.enable_thinking = (mode & 32) != 0;
    if (mode & 64) options.date = std::string(text.substr(0, 11));
    (void)ss::render_chat(families[(mode >> 2) % families.size()].family, split_conversation(text), options);
  }
  return 0;
}
