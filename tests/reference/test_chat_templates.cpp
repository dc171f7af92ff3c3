// Chat templates against real Jinja2 renders: the 11 templates of ../shared/fixtures/chat-templates
// must each be recognised as their family, and every stored conversation (renders.json, 4 cases per
// template) must render byte for byte as Jinja2 3.1.6 rendered it, or fail where the template
// raised. Where /usr/bin/python3 has jinja2, a second test renders a few thousand random
// conversations with tests/py/render_chat_jinja.py and with our code, and compares them all.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "safeshrink/chat_template.h"
#include "test_support.h"

using namespace ss;

namespace {

std::string read_text(const std::string& path) {
  const std::vector<uint8_t> bytes = test::read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

std::string chat_dir() { return test::fixtures_dir() + "/chat-templates"; }

// The family each fixture template belongs to (from the model it was taken from; Llama 3.3 ships
// Llama 3.1's template byte for byte, so it is that family).
const std::map<std::string, std::string>& expected_families() {
  static const std::map<std::string, std::string> m = {
      {"meta-llama-Llama-3.1-8B-Instruct", "llama3.1"},
      {"meta-llama-Llama-3.2-3B-Instruct", "llama3.2"},
      {"meta-llama-Llama-3.3-70B-Instruct", "llama3.1"},
      {"Qwen-Qwen2.5-7B-Instruct", "qwen2.5"},
      {"Qwen-Qwen3-0.6B", "qwen3"},
      {"mistralai-Mistral-Nemo-Instruct-2407", "mistral-nemo"},
      {"google-gemma-2-2b-it", "gemma"},
      {"microsoft-Phi-3.5-mini-instruct", "phi3"},
      {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "deepseek-r1"},
      {"ibm-granite-granite-3.3-2B-Instruct", "granite3.3"},
      {"HuggingFaceTB-SmolLM3-3B", "smollm3"},
  };
  return m;
}

std::string json_string_or_empty(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

std::vector<ChatMessage> to_messages(const nlohmann::json& list) {
  std::vector<ChatMessage> out;
  for (const auto& m : list) out.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  return out;
}

// "TemplateError: System role not supported" -> "System role not supported"
std::string error_text(const std::string& recorded) {
  const size_t colon = recorded.find(": ");
  return colon == std::string::npos ? recorded : recorded.substr(colon + 2);
}

size_t first_difference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

TEST(ChatTemplateFixtures, EveryTemplateDetectedAndEveryRenderExact) {
  SS_REQUIRE_SHARED();
  const nlohmann::json index = nlohmann::json::parse(read_text(chat_dir() + "/renders.json"));
  const nlohmann::json& cases = index.at("cases");
  ASSERT_EQ(cases.size(), 4u);
  ASSERT_EQ(index.at("templates").size(), expected_families().size());

  int detected = 0, renders = 0, passed = 0, identical = 0, expected_errors = 0;
  for (const auto& [name, entry] : index.at("templates").items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(expected_families().count(name)) << "fixture template not in the expected table";
    const std::string jinja = read_text(chat_dir() + "/" + entry.at("template_file").get<std::string>());
    ASSERT_FALSE(jinja.empty());
    const Result<ChatFamily> family = detect_chat_template(jinja);
    ASSERT_TRUE(family.ok()) << family.status().to_string();
    EXPECT_EQ(chat_family_name(*family), expected_families().at(name));
    if (chat_family_name(*family) == expected_families().at(name)) ++detected;

    ChatRenderOptions options;  // add_generation_prompt = true, date 26 Jul 2024, as the renders
    options.bos_token = json_string_or_empty(entry, "bos_token");  // null in renders.json: unused
    options.eos_token = json_string_or_empty(entry, "eos_token");
    for (const auto& [case_name, render] : entry.at("renders").items()) {
      SCOPED_TRACE(case_name);
      ++renders;
      const Result<std::string> ours = render_chat(*family, to_messages(cases.at(case_name)), options);
      if (render.contains("error")) {
        const std::string want = error_text(render.at("error").get<std::string>());
        EXPECT_FALSE(ours.ok()) << "the real template raised \"" << want << "\", we rendered";
        if (!ours.ok()) {
          EXPECT_NE(ours.status().message().find(want), std::string::npos) << ours.status().to_string();
          if (ours.status().message().find(want) != std::string::npos) ++passed, ++expected_errors;
        }
        continue;
      }
      const std::string want = read_text(chat_dir() + "/" + render.at("file").get<std::string>());
      ASSERT_EQ(want.size(), render.at("n_bytes").get<size_t>()) << "fixture file does not match its index";
      ASSERT_TRUE(ours.ok()) << ours.status().to_string();
      EXPECT_EQ(*ours, want) << "first difference at byte " << first_difference(*ours, want);
      if (*ours == want) ++passed, ++identical;
    }
  }
  EXPECT_EQ(renders, 44);
  std::printf("chat templates: %d/%zu detected; %d/%d renders pass (%d byte-identical, %d expected errors)\n",
              detected, expected_families().size(), passed, renders, identical, expected_errors);
}

// Random conversations (roles in and out of order, whitespace at the edges, Unicode spaces, think
// blocks, tool messages, generation prompt on/off, other dates, enable_thinking) rendered by Jinja2
// and by us. Where Jinja2 raised we must fail with its message; where it rendered we must render the
// same bytes, except for messages of a role the template drops silently, which we refuse.
TEST(ChatTemplateFixtures, RandomConversationsMatchJinja2) {
  SS_REQUIRE_SHARED();
  SS_REQUIRE_PYTHON("jinja2");
  const nlohmann::json index = nlohmann::json::parse(read_text(chat_dir() + "/renders.json"));
  const std::vector<std::string> contents = {
      "Hello", "  spaced  ", "\nnl\n", "", "x\u3000", "\u00a0nbsp\u00a0", "<think>\nr1\n</think>\n\nans",
      "<think>a</think>b</think>c", "pre<think>x\n</think>post", "\n\n<think>\n\n</think>\n\nz", "/no_think be brief",
      "/think deep", "<tool_response>\nr\n</tool_response>", "{user} {bos} \"q\" \\ \t tab", "\xc3\xbcn\xe2\x80\xa8", "\x01"};
  const std::vector<std::string> roles = {"system", "user", "assistant", "tool", "ipython", "foo"};
  const std::vector<std::string> dates = {"26 Jul 2024", "05 Mar 2025", "1 Jan 2000"};
  std::mt19937 rng(20240726);
  const auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };

  struct Case { ChatFamily family; std::vector<ChatMessage> messages; ChatRenderOptions options; };
  std::vector<Case> ours_cases;
  nlohmann::json jinja_cases = nlohmann::json::array();
  for (const auto& [name, entry] : index.at("templates").items()) {
    const std::string path = chat_dir() + "/" + entry.at("template_file").get<std::string>();
    const Result<ChatFamily> family = detect_chat_template(read_text(path));
    ASSERT_TRUE(family.ok()) << name;
    for (int k = 0; k < 300; ++k) {
      Case c{*family, {}, {}};
      const size_t n = 1 + pick(6), style = pick(3);  // alternating, any standard role, any role
      for (size_t i = 0; i < n; ++i) {
        std::string role;
        if (style == 0) {
          const bool sys = !c.messages.empty() && c.messages[0].role == "system";
          role = (i == 0 && pick(2)) ? "system" : ((i - (sys ? 1 : 0)) % 2 == 0 ? "user" : "assistant");
        } else {
          role = roles[pick(style == 1 ? 3 : roles.size())];
        }
        c.messages.push_back({role, contents[pick(contents.size())]});
      }
      c.options.add_generation_prompt = pick(10) < 7;
      c.options.bos_token = json_string_or_empty(entry, "bos_token");
      c.options.eos_token = json_string_or_empty(entry, "eos_token");
      c.options.date = dates[pick(dates.size())];
      if (pick(3) == 0) c.options.enable_thinking = pick(2) == 1;
      nlohmann::json j = {{"template", path},
                          {"add_generation_prompt", c.options.add_generation_prompt},
                          {"bos_token", c.options.bos_token},
                          {"eos_token", c.options.eos_token},
                          {"date", c.options.date},
                          {"messages", nlohmann::json::array()}};
      if (c.options.enable_thinking) j["enable_thinking"] = *c.options.enable_thinking;
      for (const auto& m : c.messages) j["messages"].push_back({{"role", m.role}, {"content", m.content}});
      jinja_cases.push_back(j);
      ours_cases.push_back(std::move(c));
    }
  }
  // (plain temp files: test::temp_dir's exit-time cleanup aborts the process)
  const std::string stem = (std::filesystem::temp_directory_path() /
                            ("safeshrink-chat-jinja-" + std::to_string(::getpid()))).string();
  std::ofstream(stem + "-cases.json") << jinja_cases.dump();
  std::string log;
  const int rc = test::run_python("py/render_chat_jinja.py", stem + "-cases.json " + stem + "-out.json", &log);
  const std::string rendered = read_text(stem + "-out.json");
  std::filesystem::remove(stem + "-cases.json");
  std::filesystem::remove(stem + "-out.json");
  ASSERT_EQ(rc, 0) << log;
  const nlohmann::json reference = nlohmann::json::parse(rendered);
  ASSERT_EQ(reference.size(), ours_cases.size());

  int equal = 0, both_failed = 0, refused = 0, wrong = 0;
  for (size_t i = 0; i < ours_cases.size(); ++i) {
    const Case& c = ours_cases[i];
    const Result<std::string> ours = render_chat(c.family, c.messages, c.options);
    const nlohmann::json& ref = reference[i];
    std::string problem;
    if (ref.at("ok").get<bool>()) {
      if (ours.ok() && *ours == ref.at("text").get<std::string>()) ++equal;
      else if (!ours.ok() && ours.status().message().find("does not render") != std::string::npos) ++refused;
      else problem = ours.ok() ? "different text" : "we failed: " + ours.status().to_string();
    } else {
      const std::string want = error_text(ref.at("error").get<std::string>());
      if (!ours.ok() && ours.status().message().find(want) != std::string::npos) ++both_failed;
      else problem = "Jinja2 raised \"" + want + "\", we " + (ours.ok() ? "rendered" : ours.status().to_string());
    }
    if (!problem.empty() && ++wrong <= 5)
      ADD_FAILURE() << chat_family_name(c.family) << " case " << i << ": " << problem << "\n" << jinja_cases[i].dump();
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(equal, static_cast<int>(ours_cases.size()) / 2);  // the comparison is not vacuous
  std::printf("random conversations vs Jinja2: %d equal, %d both raise, %d refused by us (dropped role), %d wrong\n",
              equal, both_failed, refused, wrong);
}
