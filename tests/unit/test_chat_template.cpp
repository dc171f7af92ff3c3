// Chat templates without ../shared: recognition of published templates (and refusal of unknown
// ones), rendering edge cases, role and date errors, and user-defined format files. Expected texts
// were rendered by real Jinja2 3.1.6 set up as transformers' apply_chat_template (the setup of
// tests/py/render_chat_jinja.py) from the templates quoted here or in ../shared, not by our code.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "safeshrink/chat_template.h"
#include "test_support.h"

using namespace ss;

namespace {

// meta-llama/Llama-2-7b-chat-hf tokenizer_config.json chat_template.
constexpr const char* kLlama2Template =
    R"JINJA({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})JINJA";

// meta-llama/Meta-Llama-3-8B-Instruct.
constexpr const char* kLlama3Template =
    R"JINJA({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})JINJA";

// Plain ChatML (OpenHermes-2.5 and many fine-tunes).
constexpr const char* kChatmlTemplate =
    R"JINJA({% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})JINJA";

// HuggingFaceH4/zephyr-7b-beta.
constexpr const char* kZephyrTemplate = R"JINJA({% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>\n' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>\n' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>\n'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %})JINJA";

// HuggingFaceTB/SmolLM3-3B chat_template.jinja as on the hub (with the date line and tool sections).
constexpr const char* kSmolLM3HubTemplate = R"JINJA({# ───── defaults ───── #}
{%- if enable_thinking is not defined -%}
{%- set enable_thinking = true -%}
{%- endif -%}
{# ───── reasoning mode ───── #}
{%- if enable_thinking -%}
{%- set reasoning_mode = "/think" -%}
{%- else -%}
{%- set reasoning_mode = "/no_think" -%}
{%- endif -%}
{# ───── header (system message) ───── #}
{{- "<|im_start|>system\n" -}}
{%- if messages[0].role == "system" -%}
{%- set system_message = messages[0].content -%}
{%- if "/no_think" in system_message -%}
    {%- set reasoning_mode = "/no_think" -%}
{%- elif "/think" in system_message -%}
    {%- set reasoning_mode = "/think" -%}
{%- endif -%}
{%- set custom_instructions = system_message.replace("/no_think", "").replace("/think", "").rstrip() -%}
{%- endif -%}
{%- if "/system_override" in system_message -%}
{{- custom_instructions.replace("/system_override", "").rstrip() -}}
{{- "<|im_end|>\n" -}}
{%- else -%}
{{- "## Metadata\n\n" -}}
{{- "Knowledge Cutoff Date: June 2025\n" -}}
{%- set today = strftime_now("%d %B %Y") -%}
{{- "Today Date: " ~ today ~ "\n" -}}
{{- "Reasoning Mode: " + reasoning_mode + "\n\n" -}}

{{- "## Custom Instructions\n\n" -}}
{%- if custom_instructions -%}
    {{- custom_instructions + "\n\n" -}}
{%- elif reasoning_mode == "/think" -%}
    {{- "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves thoroughly exploring questions through a systematic thinking process before providing the final precise and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please structure your response into two main sections: Thought and Solution using the specified format: <think> Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. Each step should include detailed considerations such as analysing questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, explorations, and reflections from the Thought section, systematically present the final solution that you deem correct. The Solution section should be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.\n\n" -}}
{%- else -%}
    {{- "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n" -}}
{%- endif -%}

{{- "## Tools\n\n" -}}
{{- "### XML Tools\n\n" -}}
{%- if tools -%}
    {%- set ns = namespace(xml_tool_string="You may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n") -%}
    {%- for tool in tools -%}
    {%- set ns.xml_tool_string = ns.xml_tool_string ~ (tool | tojson) ~ "\n" -%}
    {%- endfor -%}
    {%- set xml_tools = ns.xml_tool_string + "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags." -%}
{%- endif -%}
{%- if xml_tools -%}
    {{- xml_tools -}}
{%- else -%}
    {{- "None"  -}}
{%- endif -%}
{{- "\n\n" -}}
{{- "### Python Tools\n\n" -}}
{%- if python_tools -%}
    {{- python_tools -}}
{%- else -%}
    {{- "None"  -}}
{%- endif -%}
{{- "\n\n" -}}
{{- "<|im_end|>\n" -}}
{%- endif -%}
{# ───── main loop ───── #}
{%- for message in messages -%}
    {%- set content = message.content if message.content is string else "" -%}
    {%- if message.role == "user" -%}
        {{ "<|im_start|>" + message.role + "\n"  + content + "<|im_end|>\n" }}
    {%- elif message.role == "assistant" -%}
        {% generation %}
        {%- if reasoning_mode == "/think" -%}
            {{ "<|im_start|>assistant\n" + content.lstrip("\n") + "<|im_end|>\n" }}
        {%- else -%}
            {{ "<|im_start|>assistant\n" + "<think>\n\n</think>\n" + content.lstrip("\n") + "<|im_end|>\n" }}
        {%- endif -%}
        {% endgeneration %}
    {%- elif message.role == "tool" -%}
    {{ "<|im_start|>" + "user\n"  + content + "<|im_end|>\n" }}
    {%- endif -%}
{%- endfor -%}
{# ───── generation prompt ───── #}
{%- if add_generation_prompt -%}
    {%- if reasoning_mode == "/think" -%}
        {{ "<|im_start|>assistant\n" }}
    {%- else -%}
        {{ "<|im_start|>assistant\n" + "<think>\n\n</think>\n"  }}
    {%- endif -%}
{%- endif -%}
)JINJA";

std::vector<ChatMessage> conversation(std::initializer_list<std::pair<const char*, const char*>> turns) {
  std::vector<ChatMessage> out;
  for (const auto& [role, content] : turns) out.push_back({role, content});
  return out;
}

ChatRenderOptions tokens(std::string bos, std::string eos) {
  ChatRenderOptions o;
  o.bos_token = std::move(bos);
  o.eos_token = std::move(eos);
  return o;
}

std::string render_or_error(ChatFamily family, const std::vector<ChatMessage>& messages,
                            const ChatRenderOptions& options = {}) {
  const Result<std::string> r = render_chat(family, messages, options);
  return r.ok() ? *r : "ERROR " + r.status().to_string();
}

}  // namespace

// ---- recognition ----

TEST(ChatTemplateDetect, UnknownTemplateIsAnErrorListingEveryFamily) {
  const Result<ChatFamily> r = detect_chat_template("{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::UNSUPPORTED);
  const std::vector<std::string> names = chat_family_names();
  ASSERT_EQ(names.size(), chat_family_registry().size());
  for (const auto& name : names) EXPECT_NE(r.status().message().find(name), std::string::npos) << name;
  EXPECT_NE(r.status().message().find("--chat-template"), std::string::npos);
}

TEST(ChatTemplateDetect, BlankTemplateIsPlain) {
  EXPECT_EQ(*detect_chat_template(""), ChatFamily::PLAIN);
  EXPECT_EQ(*detect_chat_template(" \n\t"), ChatFamily::PLAIN);
  EXPECT_EQ(render_or_error(ChatFamily::PLAIN, conversation({{"system", "S"}, {"user", "Q"}}), tokens("<s>", "")),
            "<s>S\n\nQ");
}

TEST(ChatTemplateDetect, PublishedTemplatesAreRecognised) {
  EXPECT_EQ(*detect_chat_template(kLlama2Template), ChatFamily::LLAMA2);
  EXPECT_EQ(*detect_chat_template(kLlama3Template), ChatFamily::LLAMA3);
  EXPECT_EQ(*detect_chat_template(kChatmlTemplate), ChatFamily::CHATML);
  EXPECT_EQ(*detect_chat_template(kZephyrTemplate), ChatFamily::ZEPHYR);
  EXPECT_EQ(*detect_chat_template(kSmolLM3HubTemplate), ChatFamily::SMOLLM3_HUB);
}

TEST(ChatTemplateDetect, EscapedAndRawNewlinesInStringsAreTheSame) {
  // The Python-source form of Zephyr's template has raw newlines where the JSON form has "\n".
  std::string raw;
  for (const char* c = kZephyrTemplate; *c; ++c) {
    if (c[0] == '\\' && c[1] == 'n') raw += '\n', ++c;
    else raw += *c;
  }
  ASSERT_EQ(raw.find("\\n"), std::string::npos);
  EXPECT_EQ(*detect_chat_template(raw), ChatFamily::ZEPHYR);
}

TEST(ChatTemplateDetect, NearMissesAndMixturesAreRefusedNotGuessed) {
  // Llama 3.0's first release: the generation prompt without `if add_generation_prompt`.
  std::string always_prompt = kLlama3Template;
  const std::string gen_if = "{% if add_generation_prompt %}";
  always_prompt.erase(always_prompt.find(gen_if), gen_if.size());
  always_prompt.erase(always_prompt.rfind("{% endif %}"));
  EXPECT_FALSE(detect_chat_template(always_prompt).ok());
  // Two templates glued together match two families.
  const Result<ChatFamily> both = detect_chat_template(std::string(kLlama2Template) + kZephyrTemplate);
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("several"), std::string::npos) << both.status().to_string();
  EXPECT_FALSE(detect_chat_template(std::string(2u << 20, ' ') + kChatmlTemplate).ok());  // over the size cap
}

TEST(ChatTemplateDetect, FamilyNamesRoundTrip) {
  for (const auto& info : chat_family_registry()) {
    EXPECT_EQ(*chat_family_from_name(info.name), info.family);
    EXPECT_STREQ(chat_family_name(info.family), info.name);
    EXPECT_GT(std::string(info.summary).size(), 0u);
  }
  EXPECT_EQ(*chat_family_from_name("llama3.3"), ChatFamily::LLAMA3_1);
  const Result<ChatFamily> bad = chat_family_from_name("vicuna");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("qwen3"), std::string::npos);
}

// ---- rendering, against Jinja2's output ----

TEST(ChatTemplateRender, PublishedTemplatesMatchJinja2) {
  const auto multiturn = conversation({{"system", "S"}, {"user", "Hi"}, {"assistant", "Yo"}, {"user", "Bye"}});
  EXPECT_EQ(render_or_error(ChatFamily::LLAMA2,
                            conversation({{"system", "You are terse."}, {"user", " Hi "}, {"assistant", "Hello! "}, {"user", "Bye"}}),
                            tokens("<s>", "</s>")),
            "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\n Hi [/INST] Hello! </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(render_or_error(ChatFamily::LLAMA3, conversation({{"system", "You are terse."}, {"user", " Hi\n"}}),
                            tokens("<|begin_of_text|>", "")),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_or_error(ChatFamily::CHATML, multiturn),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_or_error(ChatFamily::ZEPHYR, multiturn, tokens("", "</s>")),
            "<|system|>\nS</s>\n<|user|>\nHi</s>\n<|assistant|>\nYo</s>\n<|user|>\nBye</s>\n<|assistant|>\n");
  ChatRenderOptions no_prompt = tokens("", "</s>");
  no_prompt.add_generation_prompt = false;
  EXPECT_EQ(render_or_error(ChatFamily::ZEPHYR, conversation({{"user", "Hi"}, {"assistant", "Yo"}}), no_prompt),
            "<|user|>\nHi</s>\n<|assistant|>\nYo</s>\n");
  EXPECT_EQ(render_or_error(ChatFamily::SMOLLM3_HUB, conversation({{"system", "Be brief. /no_think"}, {"user", "Hi"}})),
            "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 26 July 2024\nReasoning Mode: /no_think\n\n## Custom Instructions\n\nBe brief.\n\n## Tools\n\n### XML Tools\n\nNone\n\n### Python Tools\n\nNone\n\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n");
  EXPECT_EQ(render_or_error(ChatFamily::SMOLLM3_HUB, conversation({{"system", "Custom prompt /system_override"}, {"user", "Hi"}})),
            "<|im_start|>system\nCustom prompt<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateRender, ReasoningToolsAndDatesMatchJinja2) {
  // Qwen3 keeps the reasoning of an answer after the last user query, and closes an empty think
  // block when enable_thinking is false.
  ChatRenderOptions no_prompt;
  no_prompt.add_generation_prompt = false;
  EXPECT_EQ(render_or_error(ChatFamily::QWEN3, conversation({{"user", "Q"}, {"assistant", "<think>\nr\n</think>\n\nA"}}), no_prompt),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nA<|im_end|>\n");
  ChatRenderOptions no_thinking;
  no_thinking.enable_thinking = false;
  EXPECT_EQ(render_or_error(ChatFamily::QWEN3, conversation({{"user", "Q"}}), no_thinking),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // Llama 3.1: a tool result goes under "ipython", JSON-quoted (a string is iterable to Jinja).
  EXPECT_EQ(render_or_error(ChatFamily::LLAMA3_1, conversation({{"user", "Q"}, {"tool", "{\"x\": 1}\n"}}),
                            tokens("<|begin_of_text|>", "")),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n\"{\\\"x\\\": 1}\\n\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  // Granite's default system prompt writes the date as strftime('%B %d, %Y').
  ChatRenderOptions march;
  march.date = "05 Mar 2025";
  EXPECT_EQ(render_or_error(ChatFamily::GRANITE3_3, conversation({{"user", "Q"}}), march),
            "<|start_of_role|>system<|end_of_role|>Knowledge Cutoff Date: April 2024. Today's Date: March 05, 2025. You are Granite, developed by IBM. You are a helpful AI assistant.<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Q<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>");
  EXPECT_EQ(render_or_error(ChatFamily::DEEPSEEK_R1,
                            conversation({{"user", "Q"}, {"tool", "r1"}, {"tool", "r2"}, {"assistant", "A"}, {"user", "Q2"}}),
                            tokens("<B>", "")),
            "<B><｜User｜>Q<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r1<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>r2<｜tool▁output▁end｜><｜tool▁outputs▁end｜>A<｜end▁of▁sentence｜><｜User｜>Q2<｜Assistant｜><think>\n");
  EXPECT_EQ(render_or_error(ChatFamily::SMOLLM3, conversation({{"system", "/no_think"}, {"user", "Hi"}, {"assistant", "\nYo"}})),
            "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /no_think\n\n## Custom Instructions\n\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\nYo<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n");
  // Gemma prints a non-user role at an assistant position verbatim.
  EXPECT_EQ(render_or_error(ChatFamily::GEMMA, conversation({{"user", "a"}, {"tool", "b"}}), tokens("<bos>", "")),
            "<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>tool\nb<end_of_turn>\n<start_of_turn>model\n");
  // Jinja's trim is Python's str.strip(): Unicode spaces (U+3000, U+00A0) go too.
  EXPECT_EQ(render_or_error(ChatFamily::GEMMA, conversation({{"user", "\u3000hi\u00a0"}})),
            "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n");
}

// ---- errors ----

TEST(ChatTemplateRender, TemplateRaisesBecomeErrors) {
  const Result<std::string> gemma = render_chat(ChatFamily::GEMMA, conversation({{"system", "S"}, {"user", "Q"}}));
  ASSERT_FALSE(gemma.ok());
  EXPECT_NE(gemma.status().message().find("System role not supported"), std::string::npos);
  const Result<std::string> mistral = render_chat(ChatFamily::MISTRAL_NEMO, conversation({{"user", "a"}, {"user", "b"}}));
  ASSERT_FALSE(mistral.ok());
  EXPECT_NE(mistral.status().message().find("After the optional system message, conversation roles must alternate"),
            std::string::npos);
  const Result<std::string> gemma_tool = render_chat(ChatFamily::GEMMA, conversation({{"tool", "a"}}));
  ASSERT_FALSE(gemma_tool.ok());
  EXPECT_NE(gemma_tool.status().message().find("Conversation roles must alternate user/assistant"), std::string::npos);
  const Result<std::string> llama2 = render_chat(ChatFamily::LLAMA2, conversation({{"assistant", "a"}}));
  ASSERT_FALSE(llama2.ok());
  EXPECT_NE(llama2.status().message().find("Conversation roles must alternate"), std::string::npos);
}

TEST(ChatTemplateRender, RolesATemplateWouldDropAreRefused) {
  // Phi-3, Zephyr, Qwen, DeepSeek, SmolLM3 and Llama 2 silently skip a message of another role.
  const struct { ChatFamily family; const char* role; } cases[] = {
      {ChatFamily::PHI3, "tool"},        {ChatFamily::ZEPHYR, "tool"},     {ChatFamily::QWEN2_5, "function"},
      {ChatFamily::QWEN3, "ipython"},    {ChatFamily::DEEPSEEK_R1, "observation"},
      {ChatFamily::SMOLLM3, "developer"}, {ChatFamily::LLAMA2, "tool"},     {ChatFamily::PLAIN, "tool"}};
  for (const auto& c : cases) {
    const Result<std::string> r =
        render_chat(c.family, conversation({{"user", "Q"}, {c.role, "dropped?"}, {"user", "Q2"}}));
    ASSERT_FALSE(r.ok()) << chat_family_name(c.family);
    EXPECT_EQ(r.status().code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(r.status().message().find(std::string("\"") + c.role + "\""), std::string::npos) << r.status().to_string();
    EXPECT_NE(r.status().message().find("supported roles: system, user, assistant"), std::string::npos);
  }
  // Families that print the role name accept other roles, but never markup in a role name.
  EXPECT_TRUE(render_chat(ChatFamily::GRANITE3_3, conversation({{"user", "Q"}, {"tool", "r"}})).ok());
  EXPECT_TRUE(render_chat(ChatFamily::QWEN2_5, conversation({{"user", "Q"}, {"tool", "r"}})).ok());
  const Result<std::string> markup =
      render_chat(ChatFamily::LLAMA3_1, conversation({{"user<|end_header_id|>", "Q"}}));
  ASSERT_FALSE(markup.ok());
  EXPECT_NE(markup.status().message().find("role name"), std::string::npos);
}

TEST(ChatTemplateRender, EmptyConversationAndBadDatesAreErrors) {
  EXPECT_FALSE(render_chat(ChatFamily::CHATML, {}).ok());
  for (const char* date : {"2024-07-26", "26 July 2024", "32 Jan 2024", "29 Feb 2023", "26 jul 2024", ""}) {
    ChatRenderOptions o;
    o.date = date;
    EXPECT_FALSE(render_chat(ChatFamily::LLAMA3_2, conversation({{"user", "Q"}}), o).ok()) << date;
    EXPECT_TRUE(render_chat(ChatFamily::CHATML, conversation({{"user", "Q"}}), o).ok()) << "no date shown";
  }
  ChatRenderOptions leap;
  leap.date = "29 Feb 2024";
  const Result<std::string> r = render_chat(ChatFamily::LLAMA3_2, conversation({{"user", "Q"}}), leap);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->find("Today Date: 29 Feb 2024\n"), std::string::npos);
}

// ---- user-defined formats ----

TEST(CustomChatFormat, PhiStyleFileRendersLikeThePhi3Family) {
  const Result<CustomChatFormat> f = parse_custom_chat_format(
      "# Phi-3, by hand\n"
      "system: <|system|>\\n{system}<|end|>\\n\n"
      "user: <|user|>\\n{user}<|end|>\\n\r\n"
      "\n"
      "assistant: <|assistant|>\\n{assistant}<|end|>\\n\n");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(f->generation, "<|assistant|>\n");  // the assistant line up to {assistant}
  const auto msgs = conversation({{"system", "S"}, {"user", "Q"}, {"assistant", "A"}, {"user", "Q2"}});
  const Result<std::string> ours = render_custom_chat(*f, msgs);
  ASSERT_TRUE(ours.ok()) << ours.status().to_string();
  // The Phi-3 template text, spelled out: what microsoft-Phi-3.5-mini-instruct renders for this.
  EXPECT_EQ(*ours, "<|system|>\nS<|end|>\n<|user|>\nQ<|end|>\n<|assistant|>\nA<|end|>\n<|user|>\nQ2<|end|>\n<|assistant|>\n");
  EXPECT_EQ(*ours, *render_chat(ChatFamily::PHI3, msgs));
}

TEST(CustomChatFormat, TokensPlaceholdersAndContentAreKeptApart) {
  const Result<CustomChatFormat> f =
      parse_custom_chat_format("prefix: {bos}\nuser: [U]{user}[/U] {json: {}}\\t\\\\\ngeneration: [A]");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ChatRenderOptions o = tokens("<s>", "</s>");
  // Placeholders inside a message are text, not placeholders.
  EXPECT_EQ(*render_custom_chat(*f, conversation({{"user", "{bos}{user}"}}), o), "<s>[U]{bos}{user}[/U] {json: {}}\t\\[A]");
  o.add_generation_prompt = false;
  EXPECT_EQ(*render_custom_chat(*f, conversation({{"user", "x"}}), o), "<s>[U]x[/U] {json: {}}\t\\");
  // Turns the format lacks are errors, never dropped.
  const Result<std::string> sys = render_custom_chat(*f, conversation({{"system", "S"}, {"user", "x"}}), o);
  ASSERT_FALSE(sys.ok());
  EXPECT_NE(sys.status().message().find("no 'system' line"), std::string::npos);
  EXPECT_FALSE(render_custom_chat(*f, conversation({{"user", "x"}, {"assistant", "y"}}), o).ok());
  EXPECT_FALSE(render_custom_chat(*f, conversation({{"tool", "x"}}), o).ok());
}

TEST(CustomChatFormat, MalformedFilesNameTheProblem) {
  const struct { const char* text; const char* expect; } cases[] = {
      {"system: {system}\n", "'user' line is missing"},
      {"user: {user}\nuser: {user}\n", "line 2: 'user' is given twice"},
      {"user: {user}\nbot: {assistant}\n", "line 2: expected \"key: value\""},
      {"user {user}\n", "line 1: expected"},
      {"user: {user}\\q\n", "unknown escape"},
      {"user: {user}\\", "unknown escape"},
      {"user: {user} {user}\n", "exactly once, found 2"},
      {"user: hello\n", "exactly once, found 0"},
      {"user: {user}\nsystem: {user}\n", "belongs to another turn"},
      {"user: {user}\ngeneration: {assistant}\n", "belongs to another turn"},
      {"user: {user}\nassistant:\n", "'assistant' is empty"},
  };
  for (const auto& c : cases) {
    const Result<CustomChatFormat> f = parse_custom_chat_format(c.text);
    ASSERT_FALSE(f.ok()) << c.text;
    EXPECT_NE(f.status().message().find(c.expect), std::string::npos) << f.status().to_string();
  }
  EXPECT_FALSE(parse_custom_chat_format(std::string(kMaxCustomChatFormatBytes + 1, '#')).ok());
}

TEST(CustomChatFormat, LoadsFromAFile) {
  // (a plain temp file: test::temp_dir's exit-time cleanup aborts the process, see the report)
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("safeshrink-chat-format-" + std::to_string(::getpid()) + ".txt")).string();
  std::ofstream(path) << "user: ### Q: {user}\\n\nassistant: ### A: {assistant}\\n\n";
  const Result<CustomChatFormat> f = load_custom_chat_format(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(*render_custom_chat(*f, conversation({{"user", "Q"}})), "### Q: Q\n### A: ");
  const Result<CustomChatFormat> missing = load_custom_chat_format(path + ".absent");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::IO_ERROR);
  std::filesystem::remove(path);
}
