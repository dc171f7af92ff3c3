// Chat templates matched by signature and rendered by hand-written functions, one per family, each a
// plain transcription of what the family's Jinja template outputs (with trim_blocks and
// lstrip_blocks on, tools=None), including its raise_exception calls. It is not a Jinja engine: the
// template text is only searched for substrings, never parsed or run. To add a family: a value in
// ChatFamily, a row in kFamilies (signatures that must all be present and ones that must be absent,
// chosen so that any template matching them renders as our function does), a render_<family>
// function and its case in render_chat, and a test against the real template's output.
#include "safeshrink/chat_template.h"

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>

namespace ss {
namespace {

// ---- Python string semantics the templates rely on ----

// str.isspace() for one code point (Python's whitespace set).
bool is_python_space(uint32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F)) return true;
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

// Decodes the UTF-8 code point starting at s[i]; returns its length, or 0 when the bytes are not
// valid UTF-8 (such a byte is never whitespace).
size_t utf8_decode(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) { *cp = c; return 1; }
  size_t len = 0;
  uint32_t v = 0;
  if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; }
  else return 0;
  if (len > s.size() - i) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  *cp = v;
  return len;
}

// str.strip() / lstrip() / rstrip() without arguments, and Jinja's `trim` filter.
std::string py_strip(std::string_view s, bool left = true, bool right = true) {
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      uint32_t cp = 0;
      const size_t n = utf8_decode(s, begin, &cp);
      if (n == 0 || !is_python_space(cp)) break;
      begin += n;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;  // back up to the lead byte of the last code point
      while (start > begin && end - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      uint32_t cp = 0;
      const size_t n = utf8_decode(s, start, &cp);
      if (n == 0 || start + n != end || !is_python_space(cp)) break;
      end = start;
    }
  }
  return std::string(s.substr(begin, end - begin));
}
std::string py_rstrip(std::string_view s) { return py_strip(s, false, true); }

// str.strip('\n') and its one-sided forms.
std::string strip_newlines(std::string_view s, bool left = true, bool right = true) {
  size_t begin = 0, end = s.size();
  if (left) while (begin < end && s[begin] == '\n') ++begin;
  if (right) while (end > begin && s[end - 1] == '\n') --end;
  return std::string(s.substr(begin, end - begin));
}
std::string lstrip_newlines(std::string_view s) { return strip_newlines(s, true, false); }
std::string rstrip_newlines(std::string_view s) { return strip_newlines(s, false, true); }

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }
bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}
// s.split(sep)[-1] and s.split(sep)[0].
std::string after_last(std::string_view s, std::string_view sep) {
  const size_t at = s.rfind(sep);
  return std::string(at == std::string_view::npos ? s : s.substr(at + sep.size()));
}
std::string before_first(std::string_view s, std::string_view sep) {
  return std::string(s.substr(0, s.find(sep)));
}
// s.replace(from, "")
std::string erase_all(std::string_view s, std::string_view from) {
  std::string out;
  size_t pos = 0;
  for (size_t at; (at = s.find(from, pos)) != std::string_view::npos; pos = at + from.size())
    out.append(s.substr(pos, at - pos));
  out.append(s.substr(pos));
  return out;
}

// json.dumps(s, ensure_ascii=False): the `tojson` filter as transformers defines it.
std::string python_json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

// ---- dates: ChatRenderOptions::date is "DD Mon YYYY" ----

struct CivilDate { int day, month, year; };  // month 1..12
constexpr std::array<const char*, 12> kMonthAbbrev = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<const char*, 12> kMonthName = {"January", "February", "March",     "April",   "May",      "June",
                                                    "July",    "August",   "September", "October", "November", "December"};

Result<CivilDate> parse_render_date(std::string_view text) {
  const auto bad = [&] {
    return invalid_argument("chat render date: expected \"DD Mon YYYY\" (e.g. \"26 Jul 2024\"), got \"" +
                            std::string(text.substr(0, 40)) + "\"");
  };
  const size_t sp1 = text.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp1 > 2) return bad();
  const size_t sp2 = text.find(' ', sp1 + 1);
  if (sp2 != sp1 + 4 || text.size() != sp2 + 5) return bad();
  CivilDate d{0, 0, 0};
  for (size_t i = 0; i < sp1; ++i) {
    if (text[i] < '0' || text[i] > '9') return bad();
    d.day = d.day * 10 + (text[i] - '0');
  }
  for (size_t i = sp2 + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return bad();
    d.year = d.year * 10 + (text[i] - '0');
  }
  const std::string_view mon = text.substr(sp1 + 1, 3);
  for (int m = 0; m < 12; ++m)
    if (mon == kMonthAbbrev[m]) d.month = m + 1;
  if (d.month == 0) return bad();
  const bool leap = (d.year % 4 == 0 && d.year % 100 != 0) || d.year % 400 == 0;
  constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int days = kDays[d.month - 1] + (d.month == 2 && leap ? 1 : 0);
  if (d.day < 1 || d.day > days) return bad();
  return d;
}

std::string two_digits(int v) { return std::string(1, char('0' + v / 10)) + char('0' + v % 10); }
std::string four_digits(int v) { return two_digits(v / 100) + two_digits(v % 100); }
// strftime "%d %b %Y" -> "26 Jul 2024"
std::string format_d_b_Y(const CivilDate& d) {
  return two_digits(d.day) + " " + kMonthAbbrev[d.month - 1] + " " + four_digits(d.year);
}
// strftime "%B %d, %Y" -> "July 26, 2024"
std::string format_B_d_Y(const CivilDate& d) {
  return std::string(kMonthName[d.month - 1]) + " " + two_digits(d.day) + ", " + four_digits(d.year);
}
// strftime "%d %B %Y" -> "26 July 2024"
std::string format_d_B_Y(const CivilDate& d) {
  return two_digits(d.day) + " " + kMonthName[d.month - 1] + " " + four_digits(d.year);
}

// ---- the family table ----

struct FamilyRow {
  ChatFamilyInfo info;
  std::vector<std::string_view> required;   // all present (after "\n" escapes become newlines)
  std::vector<std::string_view> forbidden;  // none present
};

const std::vector<FamilyRow>& family_rows() {
  static const std::vector<FamilyRow> rows = {
      {{ChatFamily::PLAIN, "plain", "no chat template: bos, then the contents one blank line apart",
        "(none)"},
       {}, {}},
      {{ChatFamily::LLAMA2, "llama2", "[INST] <<SYS>> system <</SYS>> user [/INST] answer </s>",
        "meta-llama/Llama-2-7b-chat-hf tokenizer_config.json"},
       {"<<SYS>>\n' + system_message + '\n<</SYS>>\n\n'", "bos_token + '[INST] ' + content.strip() + ' [/INST]'",
        "content.strip() + ' ' + eos_token", "Conversation roles must alternate"},
       {"You are a helpful, respectful and honest assistant"}},
      {{ChatFamily::LLAMA3, "llama3", "Llama 3.0: header per message, no date line",
        "meta-llama/Meta-Llama-3-8B-Instruct"},
       {"'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>'",
        "set content = bos_token + content",
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"},
       {"Cutting Knowledge Date", "tool"}},
      {{ChatFamily::LLAMA3_1, "llama3.1", "Llama 3.1 and 3.3: date line from date_string (default 26 Jul 2024)",
        "meta-llama/Llama-3.1-8B-Instruct, meta-llama/Llama-3.3-70B-Instruct"},
       {"<|start_header_id|>system<|end_header_id|>\n\n", "Cutting Knowledge Date: December 2023\n",
        "\"Today Date: \" + date_string", "set date_string = \"26 Jul 2024\"", "builtin_tools",
        "messages[0]['content']|trim", "message['content'] | trim + '<|eot_id|>'"},
       {"strftime_now"}},
      {{ChatFamily::LLAMA3_2, "llama3.2", "Llama 3.2: date line from strftime_now", "meta-llama/Llama-3.2-3B-Instruct"},
       {"<|start_header_id|>system<|end_header_id|>\n\n", "Cutting Knowledge Date: December 2023\n",
        "\"Today Date: \" + date_string", "strftime_now(\"%d %b %Y\")", "messages[0]['content']|trim",
        "message['content'] | trim + '<|eot_id|>'"},
       {"builtin_tools"}},
      {{ChatFamily::CHATML, "chatml", "plain ChatML <|im_start|>role ... <|im_end|>, no default system prompt",
        "ChatML as used by OpenHermes-2.5 and others"},
       {"'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'",
        "'<|im_start|>assistant\n'"},
       {"You are Qwen", "think", "tool", "Metadata", "bos_token", "eos_token", "system_message", "loop."}},
      {{ChatFamily::QWEN2_5, "qwen2.5", "ChatML with the default system prompt \"You are Qwen, created by Alibaba Cloud...\"",
        "Qwen/Qwen2.5-7B-Instruct"},
       {"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n",
        "(message.role == \"system\" and not loop.first)",
        "'<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n'", "<tool_response>"},
       {"think"}},
      {{ChatFamily::QWEN3, "qwen3", "ChatML; <think> kept only after the last user query", "Qwen/Qwen3-0.6B"},
       {"ns.last_query_index", "reasoning_content", "message.content.split('</think>')[-1].lstrip('\n')",
        "'\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n')",
        "loop.last or (not loop.last and reasoning_content)",
        "enable_thinking is defined and enable_thinking is false", "'<|im_start|>assistant\n'"},
       {"Reasoning Mode", "You are Qwen"}},
      {{ChatFamily::MISTRAL_NEMO, "mistral-nemo", "[INST]...[/INST] without spaces, system before the last user message",
        "mistralai/Mistral-Nemo-Instruct-2407"},
       {"\"[INST]\" + system_message + \"\n\n\" + message[\"content\"] + \"[/INST]\"",
        "\"[INST]\" + message[\"content\"] + \"[/INST]\"", "message[\"content\"] + eos_token",
        "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."},
       {}},
      {{ChatFamily::GEMMA, "gemma", "Gemma 1/2: <start_of_turn>user/model, no system role", "google/gemma-2-2b-it"},
       {"raise_exception('System role not supported')", "set role = 'model'",
        "'<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n'",
        "'<start_of_turn>model\n'"},
       {}},
      {{ChatFamily::PHI3, "phi3", "Phi-3/3.5: <|user|>\\n ... <|end|>\\n", "microsoft/Phi-3.5-mini-instruct"},
       {"message['role'] == 'system' and message['content']", "'<|system|>\n' + message['content'] + '<|end|>\n'",
        "'<|user|>\n' + message['content'] + '<|end|>\n'", "'<|assistant|>\n' + message['content'] + '<|end|>\n'",
        "{{ eos_token }}"},
       {"bos_token"}},
      {{ChatFamily::DEEPSEEK_R1, "deepseek-r1", "<｜User｜> / <｜Assistant｜>, reasoning stripped from past answers",
        "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"},
       {"ns.system_prompt", "'<｜User｜>' + message['content']", "content.split('</think>')[-1]",
        "'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'", "'<｜Assistant｜><think>\n'"},
       {}},
      {{ChatFamily::GRANITE3_3, "granite3.3", "<|start_of_role|>role<|end_of_role|>, dated default system prompt",
        "ibm-granite/granite-3.3-2b-instruct"},
       {"Knowledge Cutoff Date: April 2024. Today's Date: \" + strftime_now('%B %d, %Y') + \". You are Granite, developed by IBM.\"",
        "system_message + \" You are a helpful AI assistant.\"",
        "'<|start_of_role|>' + message['role'] + '<|end_of_role|>' + message['content'] + '<|end_of_text|>\n'",
        "loop.last and add_generation_prompt"},
       {}},
      {{ChatFamily::SMOLLM3, "smollm3", "metadata block and reasoning mode, no date (llama.cpp's Unsloth-edited copy)",
        "HuggingFaceTB/SmolLM3-3B as in llama.cpp models/templates"},
       {"\"## Metadata\n\n\"", "\"Knowledge Cutoff Date: June 2025\n\"", "\"Reasoning Mode: \" + reasoning_mode + \"\n\n\"",
        "\"## Custom Instructions\n\n\"", "content.lstrip(\"\n\")"},
       {"Today Date", "XML Tools", "system_override"}},
      {{ChatFamily::SMOLLM3_HUB, "smollm3-hub", "metadata block with the date, reasoning mode, tool sections",
        "HuggingFaceTB/SmolLM3-3B chat_template.jinja on the Hugging Face hub"},
       {"\"## Metadata\n\n\"", "\"Knowledge Cutoff Date: June 2025\n\"", "strftime_now(\"%d %B %Y\")",
        "\"Today Date: \" ~ today ~ \"\n\"", "\"Reasoning Mode: \" + reasoning_mode + \"\n\n\"", "\"### XML Tools\n\n\"",
        "\"### Python Tools\n\n\"", "\"/system_override\" in system_message", "content.lstrip(\"\n\")"},
       {}},
      {{ChatFamily::ZEPHYR, "zephyr", "<|role|>\\n content </s>\\n", "HuggingFaceH4/zephyr-7b-beta"},
       {"'<|user|>\n' + message['content'] + eos_token }}\n", "'<|system|>\n' + message['content'] + eos_token }}\n",
        "'<|assistant|>\n'", "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n"},
       {"<|end|>"}},
  };
  return rows;
}

std::string joined_names() {
  std::string out;
  for (const auto& row : family_rows()) out += (out.empty() ? "" : ", ") + std::string(row.info.name);
  return out;
}

// ---- messages and roles ----

Status raised(ChatFamily family, std::string_view message) {
  return invalid_argument("chat template '" + std::string(chat_family_name(family)) + "' raises: " +
                          std::string(message));
}

bool is_standard_role(std::string_view role) { return role == "system" || role == "user" || role == "assistant"; }

// Role names that a template prints verbatim must not smuggle markup into the prompt.
Status check_role_name(ChatFamily family, std::string_view role) {
  bool ok = !role.empty() && role.size() <= 32;
  for (const char c : role)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  if (ok) return ok_status();
  return invalid_argument("chat family '" + std::string(chat_family_name(family)) +
                          "': a role name must be 1..32 characters of [A-Za-z0-9_-], got \"" +
                          std::string(role.substr(0, 40)) + "\"");
}

enum class RolePolicy {
  STANDARD,          // system, user, assistant
  STANDARD_OR_TOOL,  // ... and "tool"
  ANY_NAME,          // any role name (printed verbatim)
};

Status check_role(ChatFamily family, size_t index, std::string_view role, RolePolicy policy) {
  if (is_standard_role(role)) return ok_status();
  if (policy == RolePolicy::ANY_NAME) return check_role_name(family, role);
  if (policy == RolePolicy::STANDARD_OR_TOOL && role == "tool") return ok_status();
  return invalid_argument("chat family '" + std::string(chat_family_name(family)) + "': message " +
                          std::to_string(index) + " has role \"" + std::string(role.substr(0, 40)) +
                          "\", which its template does not render (it would drop the message); supported roles: "
                          "system, user, assistant" +
                          (policy == RolePolicy::STANDARD_OR_TOOL ? ", tool" : ""));
}

Status check_roles(ChatFamily family, const std::vector<ChatMessage>& messages, RolePolicy policy) {
  for (size_t i = 0; i < messages.size(); ++i) SS_RETURN_IF_ERROR(check_role(family, i, messages[i].role, policy));
  return ok_status();
}

// ---- one render function per family ----

using Messages = std::vector<ChatMessage>;

Result<std::string> render_plain(const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(ChatFamily::PLAIN, m, RolePolicy::STANDARD));
  std::string out = o.bos_token;
  for (size_t i = 0; i < m.size(); ++i) out += (i ? "\n\n" : "") + m[i].content;
  return out;
}

Result<std::string> render_llama2(const Messages& m, const ChatRenderOptions& o) {
  const bool has_system = m[0].role == "system";
  std::string out;
  Status dropped;  // the template drops a message of another role at an assistant position
  for (size_t i = has_system ? 1 : 0, k = 0; i < m.size(); ++i, ++k) {
    if ((m[i].role == "user") != (k % 2 == 0))
      return raised(ChatFamily::LLAMA2, "Conversation roles must alternate user/assistant/user/assistant/...");
    if (dropped.ok()) dropped = check_role(ChatFamily::LLAMA2, i, m[i].role, RolePolicy::STANDARD);
    std::string content = m[i].content;
    if (k == 0 && has_system) content = "<<SYS>>\n" + m[0].content + "\n<</SYS>>\n\n" + content;
    if (m[i].role == "user") out += o.bos_token + "[INST] " + py_strip(content) + " [/INST]";
    else if (m[i].role == "assistant") out += " " + py_strip(content) + " " + o.eos_token;
    // a system message at an assistant position is skipped by the template
  }
  if (!dropped.ok()) return dropped;
  return out;
}

std::string llama3_header(std::string_view role) {
  return "<|start_header_id|>" + std::string(role) + "<|end_header_id|>\n\n";
}

Result<std::string> render_llama3(const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(ChatFamily::LLAMA3, m, RolePolicy::ANY_NAME));
  std::string out = o.bos_token;
  for (const auto& msg : m) out += llama3_header(msg.role) + py_strip(msg.content) + "<|eot_id|>";
  if (o.add_generation_prompt) out += llama3_header("assistant");
  return out;
}

// Llama 3.1 / 3.3 and 3.2 render alike when tools are none.
Result<std::string> render_llama3_dated(ChatFamily family, const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(family, m, RolePolicy::ANY_NAME));
  SS_ASSIGN_OR_RETURN(const CivilDate date, parse_render_date(o.date));
  const bool has_system = m[0].role == "system";
  std::string out = o.bos_token + llama3_header("system") + "Cutting Knowledge Date: December 2023\n" +
                    "Today Date: " + format_d_b_Y(date) + "\n\n" + (has_system ? py_strip(m[0].content) : "") +
                    "<|eot_id|>";
  for (size_t i = has_system ? 1 : 0; i < m.size(); ++i) {
    if (m[i].role == "tool" || m[i].role == "ipython")  // a string is iterable: tojson quotes it
      out += llama3_header("ipython") + python_json_string(m[i].content) + "<|eot_id|>";
    else
      out += llama3_header(m[i].role) + py_strip(m[i].content) + "<|eot_id|>";
  }
  if (o.add_generation_prompt) out += llama3_header("assistant");
  return out;
}

std::string chatml_turn(std::string_view role, std::string_view content) {
  return "<|im_start|>" + std::string(role) + "\n" + std::string(content) + "<|im_end|>\n";
}

Result<std::string> render_chatml(const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(ChatFamily::CHATML, m, RolePolicy::ANY_NAME));
  std::string out;
  for (const auto& msg : m) out += chatml_turn(msg.role, msg.content);
  if (o.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// Qwen's tool results: consecutive tool messages share one user turn.
std::string qwen_tool_turn(const Messages& m, size_t i) {
  std::string out;
  if (i == 0 || m[i - 1].role != "tool") out += "<|im_start|>user";
  out += "\n<tool_response>\n" + m[i].content + "\n</tool_response>";
  if (i + 1 == m.size() || m[i + 1].role != "tool") out += "<|im_end|>\n";
  return out;
}

Result<std::string> render_qwen2_5(const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(ChatFamily::QWEN2_5, m, RolePolicy::STANDARD_OR_TOOL));
  std::string out = chatml_turn("system", m[0].role == "system"
                                              ? std::string_view(m[0].content)
                                              : "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i].role == "tool") out += qwen_tool_turn(m, i);
    else if (!(m[i].role == "system" && i == 0)) out += chatml_turn(m[i].role, m[i].content);
  }
  if (o.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

Result<std::string> render_qwen3(const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(ChatFamily::QWEN3, m, RolePolicy::STANDARD_OR_TOOL));
  std::string out;
  if (m[0].role == "system") out += chatml_turn("system", m[0].content);
  // The last user message that is not a wrapped tool response; assistant turns after it keep their
  // reasoning.
  size_t last_query = m.size() - 1;
  for (size_t i = m.size(); i-- > 0;) {
    const std::string& c = m[i].content;
    if (m[i].role == "user" && !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
      last_query = i;
      break;
    }
  }
  for (size_t i = 0; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user" || (msg.role == "system" && i != 0)) {
      out += chatml_turn(msg.role, msg.content);
    } else if (msg.role == "assistant") {
      std::string content = msg.content, reasoning;
      if (contains(msg.content, "</think>")) {
        content = lstrip_newlines(after_last(msg.content, "</think>"));
        reasoning = lstrip_newlines(after_last(rstrip_newlines(before_first(msg.content, "</think>")), "<think>"));
      }
      const bool last = i + 1 == m.size();
      if (i > last_query && (last || !reasoning.empty()))
        out += "<|im_start|>assistant\n<think>\n" + strip_newlines(reasoning) + "\n</think>\n\n" +
               lstrip_newlines(content);
      else
        out += "<|im_start|>assistant\n" + content;
      out += "<|im_end|>\n";
    } else if (msg.role == "tool") {
      out += qwen_tool_turn(m, i);
    }
  }
  if (o.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (o.enable_thinking.has_value() && !*o.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

Result<std::string> render_mistral_nemo(const Messages& m, const ChatRenderOptions& o) {
  constexpr ChatFamily kFamily = ChatFamily::MISTRAL_NEMO;
  const bool has_system = m[0].role == "system";
  const size_t first = has_system ? 1 : 0;
  for (size_t i = first, k = 0; i < m.size(); ++i) {
    if (m[i].role == "tool" || m[i].role == "tool_results") continue;
    if ((m[i].role == "user") != (k % 2 == 0))
      return raised(kFamily,
                    "After the optional system message, conversation roles must alternate "
                    "user/assistant/user/assistant/...");
    ++k;
  }
  std::string out = o.bos_token;
  for (size_t i = first; i < m.size(); ++i) {
    if (m[i].role == "user") {
      if (i + 1 == m.size() && has_system)
        out += "[INST]" + m[0].content + "\n\n" + m[i].content + "[/INST]";
      else
        out += "[INST]" + m[i].content + "[/INST]";
    } else if (m[i].role == "assistant") {
      out += m[i].content + o.eos_token;
    } else if (m[i].role == "tool" || m[i].role == "tool_results") {
      return raised(kFamily, "Tool call IDs should be alphanumeric strings with length 9!");  // no tool_call_id
    } else {
      return raised(kFamily,
                    "Only user and assistant roles are supported, with the exception of an initial optional "
                    "system message!");
    }
  }
  return out;
}

Result<std::string> render_gemma(const Messages& m, const ChatRenderOptions& o) {
  constexpr ChatFamily kFamily = ChatFamily::GEMMA;
  if (m[0].role == "system") return raised(kFamily, "System role not supported");
  std::string out = o.bos_token;
  for (size_t i = 0; i < m.size(); ++i) {
    if ((m[i].role == "user") != (i % 2 == 0))
      return raised(kFamily, "Conversation roles must alternate user/assistant/user/assistant/...");
    SS_RETURN_IF_ERROR(check_role_name(kFamily, m[i].role));
    const std::string_view role = m[i].role == "assistant" ? "model" : std::string_view(m[i].role);
    out += "<start_of_turn>" + std::string(role) + "\n" + py_strip(m[i].content) + "<end_of_turn>\n";
  }
  if (o.add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

Result<std::string> render_phi3(const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(ChatFamily::PHI3, m, RolePolicy::STANDARD));
  std::string out;
  for (const auto& msg : m) {
    if (msg.role == "system" && msg.content.empty()) continue;  // the template skips an empty system message
    out += "<|" + msg.role + "|>\n" + msg.content + "<|end|>\n";
  }
  out += o.add_generation_prompt ? std::string("<|assistant|>\n") : o.eos_token;
  return out;
}

Result<std::string> render_deepseek_r1(const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(ChatFamily::DEEPSEEK_R1, m, RolePolicy::STANDARD_OR_TOOL));
  std::string system_prompt;  // the last system message wins, wherever it is
  for (const auto& msg : m)
    if (msg.role == "system") system_prompt = msg.content;
  std::string out = o.bos_token + system_prompt;
  bool in_tool_outputs = false, first_output = true;  // ns.is_tool, ns.is_output_first
  for (const auto& msg : m) {
    if (msg.role == "user") {
      in_tool_outputs = false;
      out += "<｜User｜>" + msg.content;
    } else if (msg.role == "assistant") {
      if (in_tool_outputs) {
        out += "<｜tool▁outputs▁end｜>" + msg.content + "<｜end▁of▁sentence｜>";
        in_tool_outputs = false;
      } else {
        out += "<｜Assistant｜>" + after_last(msg.content, "</think>") + "<｜end▁of▁sentence｜>";
      }
    } else if (msg.role == "tool") {
      in_tool_outputs = true;
      out += first_output ? "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" : "\n<｜tool▁output▁begin｜>";
      out += msg.content + "<｜tool▁output▁end｜>";
      first_output = false;
    }
  }
  if (in_tool_outputs) out += "<｜tool▁outputs▁end｜>";
  if (o.add_generation_prompt && !in_tool_outputs) out += "<｜Assistant｜><think>\n";
  return out;
}

Result<std::string> render_granite3_3(const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(ChatFamily::GRANITE3_3, m, RolePolicy::ANY_NAME));
  const bool has_system = m[0].role == "system";
  std::string system_message;
  if (has_system) {
    system_message = m[0].content;
  } else {
    SS_ASSIGN_OR_RETURN(const CivilDate date, parse_render_date(o.date));
    system_message = "Knowledge Cutoff Date: April 2024. Today's Date: " + format_B_d_Y(date) +
                     ". You are Granite, developed by IBM. You are a helpful AI assistant.";
  }
  std::string out = "<|start_of_role|>system<|end_of_role|>" + system_message + "<|end_of_text|>\n";
  for (size_t i = has_system ? 1 : 0; i < m.size(); ++i) {
    out += "<|start_of_role|>" + m[i].role + "<|end_of_role|>" + m[i].content + "<|end_of_text|>\n";
    if (i + 1 == m.size() && o.add_generation_prompt) out += "<|start_of_role|>assistant<|end_of_role|>";
  }
  return out;
}

constexpr std::string_view kSmolThinkInstructions =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves "
    "thoroughly exploring questions through a systematic thinking process before providing the final precise and "
    "accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, "
    "reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please "
    "structure your response into two main sections: Thought and Solution using the specified format: <think> "
    "Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. "
    "Each step should include detailed considerations such as analysing questions, summarizing relevant findings, "
    "brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting "
    "previous steps. In the Solution section, based on various attempts, explorations, and reflections from the "
    "Thought section, systematically present the final solution that you deem correct. The Solution section should "
    "be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.";
constexpr std::string_view kSmolPlainInstructions =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face.";

// Both SmolLM3 templates; the hub one adds the date line, the tool sections and /system_override.
Result<std::string> render_smollm3(ChatFamily family, const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(family, m, RolePolicy::STANDARD_OR_TOOL));
  const bool hub = family == ChatFamily::SMOLLM3_HUB;
  bool think = o.enable_thinking.value_or(true);
  const bool has_system = m[0].role == "system";
  std::string custom;
  if (has_system) {
    const std::string& s = m[0].content;
    if (contains(s, "/no_think")) think = false;
    else if (contains(s, "/think")) think = true;
    custom = py_rstrip(erase_all(erase_all(s, "/no_think"), "/think"));
  }
  const std::string mode = think ? "/think" : "/no_think";
  std::string out = "<|im_start|>system\n";
  if (hub && has_system && contains(m[0].content, "/system_override")) {
    out += py_rstrip(erase_all(custom, "/system_override")) + "<|im_end|>\n";
  } else {
    out += "## Metadata\n\nKnowledge Cutoff Date: June 2025\n";
    if (hub) {
      SS_ASSIGN_OR_RETURN(const CivilDate date, parse_render_date(o.date));
      out += "Today Date: " + format_d_B_Y(date) + "\n";
    }
    out += "Reasoning Mode: " + mode + "\n\n## Custom Instructions\n\n";
    if (!custom.empty()) out += custom;
    else out += think ? kSmolThinkInstructions : kSmolPlainInstructions;
    out += "\n\n";
    if (hub) out += "## Tools\n\n### XML Tools\n\nNone\n\n### Python Tools\n\nNone\n\n";
    out += "<|im_end|>\n";
  }
  const std::string assistant_open = think ? "<|im_start|>assistant\n" : "<|im_start|>assistant\n<think>\n\n</think>\n";
  for (const auto& msg : m) {
    if (msg.role == "user") out += chatml_turn("user", msg.content);
    else if (msg.role == "assistant") out += assistant_open + lstrip_newlines(msg.content) + "<|im_end|>\n";
    else if (msg.role == "tool") out += chatml_turn("user", msg.content);
    // system messages are read only from the first position
  }
  if (o.add_generation_prompt) out += assistant_open;
  return out;
}

Result<std::string> render_zephyr(const Messages& m, const ChatRenderOptions& o) {
  SS_RETURN_IF_ERROR(check_roles(ChatFamily::ZEPHYR, m, RolePolicy::STANDARD));
  std::string out;
  for (const auto& msg : m) out += "<|" + msg.role + "|>\n" + msg.content + o.eos_token + "\n";
  if (o.add_generation_prompt) out += "<|assistant|>\n";
  return out;
}

// ---- custom formats ----

constexpr std::array<std::string_view, 5> kCustomKeys = {"prefix", "system", "user", "assistant", "generation"};

size_t count_of(std::string_view s, std::string_view part) {
  size_t n = 0;
  for (size_t at = s.find(part); at != std::string_view::npos; at = s.find(part, at + part.size())) ++n;
  return n;
}

// Appends `tmpl` with {bos}, {eos} and the turn's own placeholder replaced; the content is inserted
// as is and never scanned.
void append_turn(std::string* out, std::string_view tmpl, std::string_view placeholder, std::string_view content,
                 const ChatRenderOptions& o) {
  size_t pos = 0;
  while (pos < tmpl.size()) {
    const size_t brace = tmpl.find('{', pos);
    if (brace == std::string_view::npos) break;
    out->append(tmpl.substr(pos, brace - pos));
    const std::string_view rest = tmpl.substr(brace);
    if (!placeholder.empty() && starts_with(rest, placeholder)) {
      out->append(content);
      pos = brace + placeholder.size();
    } else if (starts_with(rest, "{bos}")) {
      out->append(o.bos_token);
      pos = brace + 5;
    } else if (starts_with(rest, "{eos}")) {
      out->append(o.eos_token);
      pos = brace + 5;
    } else {
      out->push_back('{');
      pos = brace + 1;
    }
  }
  if (pos < tmpl.size()) out->append(tmpl.substr(pos));
}

Status check_custom_format(const CustomChatFormat& f) {
  const auto check = [](std::string_view key, std::string_view value, std::string_view own, bool required) -> Status {
    for (const std::string_view ph : {"{system}", "{user}", "{assistant}"})
      if (ph != own && count_of(value, ph) != 0)
        return invalid_argument("chat format: '" + std::string(key) + "' holds " + std::string(ph) +
                                ", which belongs to another turn");
    const size_t n = own.empty() ? 0 : count_of(value, own);
    if (!own.empty() && (required || !value.empty()) && n != 1)
      return invalid_argument("chat format: '" + std::string(key) + "' must hold " + std::string(own) +
                              " exactly once, found " + std::to_string(n));
    return ok_status();
  };
  SS_RETURN_IF_ERROR(check("prefix", f.prefix, "", false));
  SS_RETURN_IF_ERROR(check("system", f.system, "{system}", false));
  SS_RETURN_IF_ERROR(check("user", f.user, "{user}", true));
  SS_RETURN_IF_ERROR(check("assistant", f.assistant, "{assistant}", false));
  SS_RETURN_IF_ERROR(check("generation", f.generation, "", false));
  return ok_status();
}

}  // namespace

// ---- public API ----

const std::vector<ChatFamilyInfo>& chat_family_registry() {
  static const std::vector<ChatFamilyInfo> infos = [] {
    std::vector<ChatFamilyInfo> v;
    for (const auto& row : family_rows()) v.push_back(row.info);
    return v;
  }();
  return infos;
}

const char* chat_family_name(ChatFamily family) {
  for (const auto& row : family_rows())
    if (row.info.family == family) return row.info.name;
  return "?";
}

std::vector<std::string> chat_family_names() {
  std::vector<std::string> names;
  for (const auto& row : family_rows()) names.emplace_back(row.info.name);
  return names;
}

Result<ChatFamily> chat_family_from_name(std::string_view name) {
  for (const auto& row : family_rows())
    if (name == row.info.name) return row.info.family;
  if (name == "llama3.3") return ChatFamily::LLAMA3_1;  // the same template as 3.1
  return invalid_argument("unknown chat family \"" + std::string(name.substr(0, 40)) + "\"; known: " + joined_names());
}

Result<ChatFamily> detect_chat_template(std::string_view jinja) {
  constexpr size_t kMaxTemplateBytes = 1u << 20;  // real templates are a few KB
  if (jinja.size() > kMaxTemplateBytes)
    return unsupported("chat template of " + std::to_string(jinja.size()) + " bytes is over the cap of " +
                       std::to_string(kMaxTemplateBytes) + "; known families: " + joined_names());
  if (py_strip(jinja).empty()) return ChatFamily::PLAIN;
  // Inside Jinja string literals "\n" (backslash, n) and a raw newline mean the same; templates use
  // either, so signatures are matched on the text with the escape turned into a newline.
  std::string text;
  text.reserve(jinja.size());
  for (size_t i = 0; i < jinja.size(); ++i) {
    if (jinja[i] == '\\' && i + 1 < jinja.size() && jinja[i + 1] == 'n') {
      text.push_back('\n');
      ++i;
    } else {
      text.push_back(jinja[i]);
    }
  }
  std::vector<ChatFamily> matches;
  std::string matched_names;
  for (const auto& row : family_rows()) {
    if (row.required.empty()) continue;  // PLAIN is the empty template only
    bool match = true;
    for (const auto sig : row.required) match = match && contains(text, sig);
    for (const auto sig : row.forbidden) match = match && !contains(text, sig);
    if (!match) continue;
    matches.push_back(row.info.family);
    matched_names += (matched_names.empty() ? "" : ", ") + std::string(row.info.name);
  }
  if (matches.size() == 1) return matches[0];
  const std::string what =
      matches.empty() ? "matches no known chat family" : "matches several families (" + matched_names + ")";
  return unsupported("chat template (" + std::to_string(jinja.size()) + " bytes) " + what +
                     "; it is never executed, so name a family (known: " + joined_names() +
                     ") or give a format file (--chat-template FILE)");
}

Result<std::string> render_chat(ChatFamily family, const std::vector<ChatMessage>& messages,
                                const ChatRenderOptions& options) {
  if (messages.empty())
    return invalid_argument("chat family '" + std::string(chat_family_name(family)) + "': no messages to render");
  switch (family) {
    case ChatFamily::PLAIN: return render_plain(messages, options);
    case ChatFamily::LLAMA2: return render_llama2(messages, options);
    case ChatFamily::LLAMA3: return render_llama3(messages, options);
    case ChatFamily::LLAMA3_1:
    case ChatFamily::LLAMA3_2: return render_llama3_dated(family, messages, options);
    case ChatFamily::CHATML: return render_chatml(messages, options);
    case ChatFamily::QWEN2_5: return render_qwen2_5(messages, options);
    case ChatFamily::QWEN3: return render_qwen3(messages, options);
    case ChatFamily::MISTRAL_NEMO: return render_mistral_nemo(messages, options);
    case ChatFamily::GEMMA: return render_gemma(messages, options);
    case ChatFamily::PHI3: return render_phi3(messages, options);
    case ChatFamily::DEEPSEEK_R1: return render_deepseek_r1(messages, options);
    case ChatFamily::GRANITE3_3: return render_granite3_3(messages, options);
    case ChatFamily::SMOLLM3:
    case ChatFamily::SMOLLM3_HUB: return render_smollm3(family, messages, options);
    case ChatFamily::ZEPHYR: return render_zephyr(messages, options);
  }
  return internal_error("render_chat: chat family " + std::to_string(static_cast<int>(family)) + " has no renderer");
}

Result<CustomChatFormat> parse_custom_chat_format(std::string_view text) {
  if (text.size() > kMaxCustomChatFormatBytes)
    return invalid_argument("chat format: " + std::to_string(text.size()) + " bytes is over the cap of " +
                            std::to_string(kMaxCustomChatFormatBytes));
  CustomChatFormat f;
  std::array<bool, kCustomKeys.size()> seen{};
  bool has_generation = false;
  size_t line_no = 0;
  for (size_t pos = 0; pos <= text.size();) {
    const size_t eol = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string at = "chat format line " + std::to_string(line_no) + ": ";
    if (py_strip(line).empty() || line.front() == '#') continue;
    const size_t colon = line.find(':');
    const std::string_view key = line.substr(0, colon == std::string_view::npos ? line.size() : colon);
    size_t k = 0;
    while (k < kCustomKeys.size() && kCustomKeys[k] != key) ++k;
    if (colon == std::string_view::npos || k == kCustomKeys.size())
      return invalid_argument(at + "expected \"key: value\" with key prefix, system, user, assistant or " +
                              "generation, got \"" + std::string(line.substr(0, 40)) + "\"");
    if (seen[k]) return invalid_argument(at + "'" + std::string(key) + "' is given twice");
    seen[k] = true;
    std::string_view raw = line.substr(colon + 1);
    if (!raw.empty() && raw.front() == ' ') raw.remove_prefix(1);
    std::string value;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '\\') {
        value.push_back(raw[i]);
        continue;
      }
      const char e = i + 1 < raw.size() ? raw[i + 1] : '\0';
      if (e == 'n') value.push_back('\n');
      else if (e == 't') value.push_back('\t');
      else if (e == 'r') value.push_back('\r');
      else if (e == '\\') value.push_back('\\');
      else
        return invalid_argument(at + "unknown escape \"\\" + std::string(e ? 1 : 0, e) +
                                "\" (use \\n, \\t, \\r or \\\\)");
      ++i;
    }
    switch (k) {
      case 0: f.prefix = std::move(value); break;
      case 1: f.system = std::move(value); break;
      case 2: f.user = std::move(value); break;
      case 3: f.assistant = std::move(value); break;
      default: f.generation = std::move(value); has_generation = true; break;
    }
  }
  if (!seen[2]) return invalid_argument("chat format: the 'user' line is missing (it holds {user})");
  if (seen[1] && f.system.empty()) return invalid_argument("chat format: 'system' is empty (it must hold {system})");
  if (seen[3] && f.assistant.empty())
    return invalid_argument("chat format: 'assistant' is empty (it must hold {assistant})");
  SS_RETURN_IF_ERROR(check_custom_format(f));
  if (!has_generation) f.generation = f.assistant.substr(0, f.assistant.find("{assistant}"));
  return f;
}

Result<CustomChatFormat> load_custom_chat_format(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("cannot open chat format file " + path);
  std::string text;
  text.resize(kMaxCustomChatFormatBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return io_error("cannot read chat format file " + path);
  text.resize(static_cast<size_t>(in.gcount()));
  auto parsed = parse_custom_chat_format(text);
  if (!parsed.ok()) return parsed.status().with_context(path);
  return parsed;
}

Result<std::string> render_custom_chat(const CustomChatFormat& format, const std::vector<ChatMessage>& messages,
                                       const ChatRenderOptions& options) {
  SS_RETURN_IF_ERROR(check_custom_format(format));
  if (messages.empty()) return invalid_argument("custom chat format: no messages to render");
  std::string out;
  append_turn(&out, format.prefix, "", "", options);
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& msg = messages[i];
    const std::string* tmpl = msg.role == "system" ? &format.system
                              : msg.role == "user" ? &format.user
                              : msg.role == "assistant" ? &format.assistant
                                                        : nullptr;
    if (tmpl == nullptr)
      return invalid_argument("custom chat format: message " + std::to_string(i) + " has role \"" +
                              msg.role.substr(0, 40) + "\"; supported roles: system, user, assistant");
    if (tmpl->empty())
      return invalid_argument("custom chat format: message " + std::to_string(i) + " is a " + msg.role +
                              " message, but the format has no '" + msg.role + "' line");
    append_turn(&out, *tmpl, "{" + msg.role + "}", msg.content, options);
  }
  if (options.add_generation_prompt) append_turn(&out, format.generation, "", "", options);
  return out;
}

}  // namespace ss
