// `safeshrink generate`: text from a model, one prompt (--prompt) or a JSONL file of prompts
// (--prompts, one {"prompt": ..., "id": ...} per line), batched, raw or as a chat turn.
// Output: the text (one prompt) or JSONL records {id, prompt, response, n_prompt_tokens,
// n_tokens, stop_reason} (--json, or always for --prompts). Progress on stderr when it is a TTY.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "safeshrink/generate.h"
#include "safeshrink/model.h"
#include "safeshrink/prompt_format.h"

namespace ss::cli {
namespace {

struct PromptRow {
  std::string id, text;
};

Result<std::vector<PromptRow>> read_prompts_jsonl(const std::string& path) {
  std::ifstream f(path);
  if (!f) return not_found(path + ": cannot open");
  std::vector<PromptRow> rows;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      return invalid_argument(path + ":" + std::to_string(lineno) + ": expected a JSON object with a string \"prompt\"");
    PromptRow r;
    r.text = j["prompt"].get<std::string>();
    r.id = j.contains("id") ? (j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump())
                            : std::to_string(rows.size());
    rows.push_back(std::move(r));
  }
  return rows;
}

// Flags every command that runs a model on prompts shares, declared once.
struct ModelPromptFlags {
  std::string model, chat_template, system;
  bool chat = false, exact = false;

  void declare(CLI::App* sub) {
    sub->add_option("-m,--model", model, "model file (.gguf, .safetensors) or HF folder")->required();
    sub->add_flag("--chat", chat, "render the prompt as a user turn with the model's chat template");
    sub->add_option("--chat-template", chat_template, "chat family name or format file (implies --chat)");
    sub->add_option("--system", system, "system message for --chat");
    sub->add_flag("--exact", exact, "dequantize weights to F32 at load (reference-grade math)");
  }
  // Loads the model and tokenizer and resolves the prompt format.
  Status open(LoadedModel* lm, PromptFormat* fmt) const {
    LoadOptions lo;
    lo.dequantize_weights = exact;
    SS_ASSIGN_OR_RETURN(*lm, load_model_with_tokenizer(model, lo));
    SS_ASSIGN_OR_RETURN(*fmt, resolve_prompt_format(*lm->tokenizer, chat || !chat_template.empty(), chat_template));
    return ok_status();
  }
};

}  // namespace

RunFn add_generate(CLI::App& app) {
  auto* sub = app.add_subcommand("generate", "Generate text from a model (GGUF or HF folder)");
  struct Opts : ModelPromptFlags {
    std::string prompt, prompts;
    std::vector<std::string> stop;
    bool json = false, quiet = false;
    int64_t max_new_tokens = 128, batch = 8, top_k = 0;
    float temperature = 0, top_p = 1;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  o->declare(sub);
  auto* one = sub->add_option("-p,--prompt", o->prompt, "prompt text");
  auto* many = sub->add_option("--prompts", o->prompts, "JSONL file, one {\"prompt\": ...} per line");
  one->excludes(many);
  sub->add_option("-n,--max-new-tokens", o->max_new_tokens, "tokens to generate at most (default 128)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  sub->add_option("--temperature", o->temperature, "0 = greedy (default)")->check(CLI::Range(0.0f, 100.0f));
  sub->add_option("--top-k", o->top_k, "keep the k most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", o->top_p, "nucleus sampling mass (1 = off)")->check(CLI::Range(0.0f, 1.0f));
  sub->add_option("--seed", o->seed, "sampling seed (default 0)");
  sub->add_option("--stop", o->stop, "stop when the continuation contains TEXT (repeatable)");
  sub->add_option("--batch", o->batch, "sequences decoded together (default 8)")->check(CLI::Range(1, 4096));
  sub->add_flag("--json", o->json, "print JSONL records");
  sub->add_flag("-q,--quiet", o->quiet, "no progress on stderr");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    if (o->prompt.empty() && o->prompts.empty()) return fail(invalid_argument("give --prompt TEXT or --prompts FILE"));
    LoadedModel lm;
    PromptFormat fmt;
    if (Status st = o->open(&lm, &fmt); !st.ok()) return fail(st);
    const Tokenizer& tok = *lm.tokenizer;

    std::vector<PromptRow> rows;
    if (!o->prompts.empty()) {
      auto r = read_prompts_jsonl(o->prompts);
      if (!r.ok()) return fail(r.status());
      rows = std::move(r).value();
    } else {
      rows.push_back({"0", o->prompt});
    }
    std::vector<std::vector<int32_t>> ids;
    for (const auto& r : rows) {
      auto e = encode_prompt(tok, fmt, r.text, o->system);
      if (!e.ok()) return fail(e.status().with_context("prompt " + r.id));
      ids.push_back(std::move(e).value());
    }
    SamplingConfig cfg;
    cfg.max_new_tokens = o->max_new_tokens;
    cfg.temperature = o->temperature;
    cfg.top_k = o->top_k;
    cfg.top_p = o->top_p;
    cfg.seed = o->seed;
    cfg.stop_strings = o->stop;
    for (int32_t id = 0; id < static_cast<int32_t>(tok.vocab_size()); ++id)
      if (tok.is_end_of_generation(id)) cfg.stop_ids.push_back(id);

    const bool show_progress = !o->quiet && isatty(2) && rows.size() > 1;
    const auto t0 = std::chrono::steady_clock::now();
    auto progress = [&](const GenerateProgress& p) {
      if (!show_progress) return;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double rate = p.done / std::max(s, 1e-9);
      std::fprintf(stderr, "\rgenerate: %lld/%lld prompts, %.2f prompts/s, ETA %.0f s   ",
                   static_cast<long long>(p.done), static_cast<long long>(p.total), rate,
                   (p.total - p.done) / std::max(rate, 1e-9));
    };
    const DecodeFn pieces = [&tok](const std::vector<int32_t>& ids_) {
      std::string text;
      for (int32_t id : ids_) text += tok.token_to_piece(id).value_or("");
      return text;
    };
    auto gens = generate(*lm.model, ids, cfg, o->batch, pieces, progress);
    if (show_progress) std::fprintf(stderr, "\n");
    if (!gens.ok()) return fail(gens.status());

    for (size_t i = 0; i < rows.size(); ++i) {
      const Generation& g = (*gens)[i];
      // The pieces, concatenated as a streaming runtime prints them (a decode() of the
      // continuation alone would drop the leading space SentencePiece vocabularies encode).
      const std::string text = pieces(g.tokens);
      if (o->json || !o->prompts.empty()) {
        nlohmann::json j = {{"id", rows[i].id},         {"prompt", rows[i].text},
                            {"response", text},        {"n_prompt_tokens", ids[i].size()},
                            {"n_tokens", g.tokens.size()}, {"stop_reason", g.stop_reason},
                            {"format", fmt.describe()}};
        std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        std::printf("%s%s\n", fmt.kind == PromptFormat::Kind::RAW ? rows[i].text.c_str() : "", text.c_str());
      }
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!o->quiet) {
      int64_t toks = 0;
      for (const auto& g : *gens) toks += static_cast<int64_t>(g.tokens.size());
      std::fprintf(stderr, "generated %lld tokens for %zu prompts in %.2f s (%.1f tokens/s)\n",
                   static_cast<long long>(toks), rows.size(), s, toks / std::max(s, 1e-9));
    }
    return EXIT_OK;
  };
}

RunFn add_score(CLI::App& app) {
  auto* sub = app.add_subcommand("score", "Log-probability of a continuation after a prompt");
  struct Opts : ModelPromptFlags {
    std::string prompt, continuation;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  o->declare(sub);
  sub->add_option("-p,--prompt", o->prompt, "prompt text")->required();
  sub->add_option("-c,--continuation", o->continuation, "continuation text to score")->required();
  sub->add_flag("--json", o->json, "print JSON");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    LoadedModel lm;
    PromptFormat fmt;
    if (Status st = o->open(&lm, &fmt); !st.ok()) return fail(st);
    const Tokenizer& tok = *lm.tokenizer;
    auto p = encode_prompt(tok, fmt, o->prompt, o->system);
    if (!p.ok()) return fail(p.status());
    auto c = tok.encode(o->continuation, false, false);
    if (!c.ok()) return fail(c.status());
    auto s = score_continuation(*lm.model, *p, *c);
    if (!s.ok()) return fail(s.status());
    if (o->json) {
      nlohmann::json tokens = nlohmann::json::array();
      for (size_t i = 0; i < c->size(); ++i)
        tokens.push_back({{"id", (*c)[i]}, {"piece", tok.token_to_piece((*c)[i]).value_or("")},
                          {"logprob", s->token_logprobs[i]}});
      nlohmann::json j = {{"logprob", s->logprob}, {"n_tokens", c->size()},
                          {"mean_logprob", s->logprob / static_cast<double>(c->size())}, {"greedy", s->greedy},
                          {"tokens", tokens}};
      std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("logprob %.6f over %zu tokens (mean %.6f), greedy %s\n", s->logprob, c->size(),
                  s->logprob / static_cast<double>(c->size()), s->greedy ? "yes" : "no");
      for (size_t i = 0; i < c->size(); ++i)
        std::printf("  %6d  %-16s %.6f\n", (*c)[i], tok.token_to_piece((*c)[i]).value_or("?").c_str(),
                    s->token_logprobs[i]);
    }
    return EXIT_OK;
  };
}

RunFn add_tokenize(CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "Token ids and pieces of a text");
  struct Opts {
    std::string model, text;
    bool no_special = false, parse_special = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("-m,--model", o->model, "a .gguf, tokenizer.json, or model folder")->required();
  sub->add_option("text", o->text, "text to tokenize")->required();
  sub->add_flag("--no-special", o->no_special, "do not add BOS/EOS");
  sub->add_flag("--parse-special", o->parse_special, "match special-token text (e.g. <|im_start|>) as tokens");
  sub->add_flag("--json", o->json, "print JSON");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto tok = open_tokenizer(o->model);
    if (!tok.ok()) return fail(tok.status());
    auto ids = tok->encode(o->text, !o->no_special, o->parse_special);
    if (!ids.ok()) return fail(ids.status());
    if (o->json) {
      nlohmann::json j = nlohmann::json::array();
      for (int32_t id : *ids) j.push_back({{"id", id}, {"piece", tok->token_to_piece(id, true).value_or("")}});
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      for (int32_t id : *ids)
        std::printf("%6d -> '%s'\n", id, tok->token_to_piece(id, true).value_or("?").c_str());
      std::printf("%zu tokens\n", ids->size());
    }
    return EXIT_OK;
  };
}

}  // namespace ss::cli
