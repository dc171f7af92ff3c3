// From a user's text to the token ids a model sees: raw text, or a chat turn rendered with the
// model's chat template family (recognised, never executed), a family named by the user, or a
// custom format file. The one place generation, scoring and evaluation turn prompts into ids.
#pragma once

#include <string>
#include <vector>

#include "safeshrink/chat_template.h"
#include "safeshrink/tokenizer.h"

namespace ss {

struct PromptFormat {
  enum class Kind { RAW, FAMILY, CUSTOM } kind = Kind::RAW;
  ChatFamily family = ChatFamily::PLAIN;
  CustomChatFormat custom;
  std::string describe() const;  // "raw", "chat: llama3.1", "chat: custom file"
};

// chat == false: RAW. Otherwise `override_template` is a family name or a format file; empty means
// the tokenizer's own template, which must be recognised (the error lists the known families).
Result<PromptFormat> resolve_prompt_format(const Tokenizer& tok, bool chat, const std::string& override_template);

// Renders (system may be empty) and tokenizes. BOS is added when the vocabulary asks for it and the
// rendered text does not already begin with the BOS token's text.
Result<std::vector<int32_t>> encode_prompt(const Tokenizer& tok, const PromptFormat& fmt, const std::string& user,
                                           const std::string& system = "");

}  // namespace ss
