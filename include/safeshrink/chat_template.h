// Chat templates, recognised and rendered by our own code: the Jinja template that a model file
// carries is untrusted text, so it is never evaluated. detect_chat_template() matches it against the
// signatures (distinctive substrings) of the families we know, and render_chat() renders a
// conversation the way the real template renders it under Hugging Face transformers'
// apply_chat_template (Jinja2, trim_blocks + lstrip_blocks, tools=None), byte for byte, including the
// errors the template raises (Gemma with a system message, ...). Not here: tokenisation of the
// rendered text (tokenizer/), tools and tool calls (a message is a role and a string), and any
// general Jinja engine. A template we do not recognise is an error that lists the known families;
// the user then names a family (chat_family_from_name) or writes a format file
// (parse_custom_chat_format). To add a family: one ChatFamily value, one row in the registry table
// of src/tokenizer/chat_template.cpp (name, summary, reference, signatures), one render function
// there, and a test that compares it with the real template's output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "safeshrink/status.h"

namespace ss {

enum class ChatFamily : uint8_t {
  PLAIN,         // no template: the contents, one blank line apart, no role markers
  LLAMA2,        // [INST] <<SYS>> ... <</SYS>> ... [/INST] answer </s>
  LLAMA3,        // Llama 3.0: <|start_header_id|>role<|end_header_id|>, no date line
  LLAMA3_1,      // Llama 3.1 and 3.3 (identical templates): date line "Today Date: " + date_string
  LLAMA3_2,      // Llama 3.2: date line from strftime_now
  CHATML,        // plain ChatML: <|im_start|>role\n...<|im_end|>\n, no default system prompt
  QWEN2_5,       // ChatML with Qwen's default system prompt
  QWEN3,         // ChatML, <think> stripped from assistant turns before the last user query
  MISTRAL_NEMO,  // [INST]...[/INST], system prepended to the last user message
  GEMMA,         // Gemma 1/2: <start_of_turn>user/model, no system role
  PHI3,          // Phi-3/3.5: <|user|>\n...<|end|>\n
  DEEPSEEK_R1,   // DeepSeek-R1 distills: <｜User｜>, <｜Assistant｜>, think stripped
  GRANITE3_3,    // Granite 3.3: <|start_of_role|>, default system prompt with the date
  SMOLLM3,       // SmolLM3 as llama.cpp ships it (Unsloth edit): metadata block, reasoning mode
  SMOLLM3_HUB,   // SmolLM3 as on the Hugging Face hub: metadata block with the date, tool sections
  ZEPHYR,        // <|user|>\n...</s>\n
};

struct ChatFamilyInfo {
  ChatFamily family;
  const char* name;       // "llama3.1"
  const char* summary;    // one line
  const char* reference;  // the template (model repository) the rendering follows
};
// Every family, in ChatFamily order.
const std::vector<ChatFamilyInfo>& chat_family_registry();
const char* chat_family_name(ChatFamily family);
// The names of chat_family_registry(), in order.
std::vector<std::string> chat_family_names();
// A registry name (also the alias "llama3.3" for LLAMA3_1); an unknown name is INVALID_ARGUMENT
// listing the known names.
Result<ChatFamily> chat_family_from_name(std::string_view name);

// The family of a template string (e.g. GGUF tokenizer.chat_template). Empty or blank text is PLAIN.
// A template that matches no family's signatures, or more than one, is UNSUPPORTED naming the known
// families: we never guess. Never evaluates the template.
Result<ChatFamily> detect_chat_template(std::string_view jinja);

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"; some families accept more (see render_chat)
  std::string content;
};

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  std::string bos_token, eos_token;  // as the model's tokenizer spells them; used where the template does
  // "DD Mon YYYY". Plays the role of date_string / strftime_now() for the families that show a date
  // (Llama 3.1/3.2, Granite 3.3 without a system message, SmolLM3 hub), each in its own format.
  std::string date = "26 Jul 2024";
  // The template variable enable_thinking (Qwen3, SmolLM3); unset = left undefined, as the fixtures.
  std::optional<bool> enable_thinking;
};

// Renders a conversation exactly as the family's real template does. Errors (INVALID_ARGUMENT):
// - where the real template raises, with its message ("System role not supported", "... roles must
//   alternate user/assistant/user/assistant/...");
// - an empty conversation, or a date that is not "DD Mon YYYY" for a family that shows it;
// - a role other than system/user/assistant, unless the family's template renders it from role and
//   content alone: the role name verbatim (llama3*, chatml, granite3.3, gemma at an assistant
//   position), or "tool" (qwen2.5, qwen3, smollm3*, deepseek-r1; llama3.1/3.2 as ipython). A message
//   of a role the real template would skip silently is refused instead of dropped.
// Role names that are rendered must be 1..32 characters of [A-Za-z0-9_-]. System messages follow the
// template exactly, including where it ignores them (llama2 and smollm3* read only a first system
// message; deepseek-r1 keeps the last one; phi3 skips an empty one).
Result<std::string> render_chat(ChatFamily family, const std::vector<ChatMessage>& messages,
                                const ChatRenderOptions& options = {});

// ---- User-defined formats (--chat-template FILE) ----
// A format file holds one turn template per line, "key: value", for the keys
//   prefix      emitted once before the first message (optional)
//   system      the system turn, holding {system} (optional; without it a system message is an error)
//   user        the user turn, holding {user} (required)
//   assistant   the assistant turn, holding {assistant} (optional; without it an assistant
//               message is an error)
//   generation  the generation prompt (optional; default: the assistant line up to {assistant})
// One space after the colon is skipped; the rest of the line is the value, with the escapes \n \t \r
// and \\ (any other backslash is an error). {bos} and {eos} may appear in any value and stand for
// ChatRenderOptions::bos_token/eos_token; {system}, {user}, {assistant} appear exactly once, in their
// own line only. Other braces are literal. Blank lines and lines starting with '#' are ignored;
// a repeated or unknown key is an error naming the line. Example (Phi-3):
//   system: <|system|>\n{system}<|end|>\n
//   user: <|user|>\n{user}<|end|>\n
//   assistant: <|assistant|>\n{assistant}<|end|>\n
// Rendering: prefix, then each message through its role's template (content inserted as is, never
// scanned for placeholders), then the generation prompt when add_generation_prompt.
struct CustomChatFormat {
  std::string prefix;
  std::string system;     // empty: the format has no system turn
  std::string user;
  std::string assistant;  // empty: the format has no assistant turn
  std::string generation;
};
inline constexpr size_t kMaxCustomChatFormatBytes = 64 * 1024;
Result<CustomChatFormat> parse_custom_chat_format(std::string_view text);
// Reads and parses a format file (at most kMaxCustomChatFormatBytes); errors name the path.
Result<CustomChatFormat> load_custom_chat_format(const std::string& path);
Result<std::string> render_custom_chat(const CustomChatFormat& format, const std::vector<ChatMessage>& messages,
                                       const ChatRenderOptions& options = {});

}  // namespace ss
