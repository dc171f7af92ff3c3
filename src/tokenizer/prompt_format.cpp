// Prompt rendering and tokenization (see include/safeshrink/prompt_format.h).
#include "safeshrink/prompt_format.h"

#include <filesystem>

namespace ss {

std::string PromptFormat::describe() const {
  switch (kind) {
    case Kind::RAW: return "raw";
    case Kind::FAMILY: return std::string("chat: ") + chat_family_name(family);
    case Kind::CUSTOM: return "chat: custom format";
  }
  return "?";
}

Result<PromptFormat> resolve_prompt_format(const Tokenizer& tok, bool chat, const std::string& override_template) {
  PromptFormat f;
  if (!chat && override_template.empty()) return f;
  if (!override_template.empty()) {
    auto fam = chat_family_from_name(override_template);
    if (fam.ok()) {
      f.kind = PromptFormat::Kind::FAMILY;
      f.family = *fam;
      return f;
    }
    if (std::filesystem::is_regular_file(override_template)) {
      SS_ASSIGN_OR_RETURN(f.custom, load_custom_chat_format(override_template));
      f.kind = PromptFormat::Kind::CUSTOM;
      return f;
    }
    return fam.status();
  }
  if (tok.chat_template().empty()) {
    std::string names;
    for (const auto& n : chat_family_names()) names += (names.empty() ? "" : ", ") + n;
    return invalid_argument("the model has no chat template; name one with --chat-template (" + names +
                            ") or give a format file");
  }
  SS_ASSIGN_OR_RETURN(f.family, detect_chat_template(tok.chat_template()));
  f.kind = PromptFormat::Kind::FAMILY;
  return f;
}

Result<std::vector<int32_t>> encode_prompt(const Tokenizer& tok, const PromptFormat& fmt, const std::string& user,
                                           const std::string& system) {
  const SpecialTokenIds& sp = tok.special_ids();
  const std::string bos = sp.bos >= 0 ? std::string(tok.token_text(sp.bos)) : "";
  const std::string eos = sp.eos >= 0 ? std::string(tok.token_text(sp.eos)) : "";
  if (fmt.kind == PromptFormat::Kind::RAW) return tok.encode(user, /*add_special=*/true, /*parse_special=*/false);
  std::vector<ChatMessage> msgs;
  if (!system.empty()) msgs.push_back({"system", system});
  msgs.push_back({"user", user});
  ChatRenderOptions opts;
  opts.bos_token = bos;
  opts.eos_token = eos;
  std::string text;
  if (fmt.kind == PromptFormat::Kind::FAMILY) {
    SS_ASSIGN_OR_RETURN(text, render_chat(fmt.family, msgs, opts));
  } else {
    SS_ASSIGN_OR_RETURN(text, render_custom_chat(fmt.custom, msgs, opts));
  }
  const bool has_bos_text = !bos.empty() && text.rfind(bos, 0) == 0;
  SS_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok.encode(text, /*add_special=*/false, /*parse_special=*/true));
  if (!has_bos_text && tok.add_bos() && sp.bos >= 0) ids.insert(ids.begin(), sp.bos);
  return ids;
}

}  // namespace ss
