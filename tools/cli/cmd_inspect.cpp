// `safeshrink inspect PATH [--json] [--all-metadata]`: what a model file holds — format,
// architecture, parameter count, every tensor (dtype, shape, bytes, bits per weight), totals and
// the metadata that matters for safety work (tokenizer size, chat template present). Reads through
// the mmapped TensorStore: no tensor bytes are touched, so a multi-GB file costs megabytes.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "safeshrink/formats.h"
#include "safeshrink/model_config.h"

namespace ss::cli {
namespace {

struct TypeTotals {
  int64_t tensors = 0, elements = 0;
  uint64_t bytes = 0;
};

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", n / double(1ull << 30));
  else if (n >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", n / double(1ull << 20));
  else if (n >= (1ull << 10)) std::snprintf(buf, sizeof buf, "%.2f KiB", n / double(1ull << 10));
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  return buf;
}

std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1000) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

double bpw(uint64_t bytes, int64_t elements) { return elements ? 8.0 * bytes / elements : 0.0; }

// Tokenizer facts from GGUF keys or HF files.
struct TokenizerFacts {
  std::string model;
  int64_t vocab = -1;
  bool chat_template = false;
};

TokenizerFacts tokenizer_facts(const TensorStore& s) {
  TokenizerFacts f;
  if (auto m = s.meta.get_string("tokenizer.ggml.model")) f.model = *m;
  if (const MetaValue* v = s.meta.find("tokenizer.ggml.tokens")) f.vocab = static_cast<int64_t>(v->count);
  f.chat_template = s.meta.find("tokenizer.chat_template") != nullptr;
  if (s.meta.find("hf.tokenizer_json_path")) f.model = f.model.empty() ? "hf tokenizer.json" : f.model;
  if (auto p = s.meta.get_string("hf.tokenizer_config_path")) {
    auto text = read_text_file(*p);
    if (text.ok()) {
      auto j = nlohmann::json::parse(*text, nullptr, false);
      if (j.is_object() && j.contains("chat_template")) f.chat_template = true;
    }
  }
  return f;
}

}  // namespace

RunFn add_inspect(CLI::App& app) {
  auto* sub = app.add_subcommand("inspect", "Show format, architecture, tensors and metadata of a model file");
  struct Opts {
    std::string path;
    bool json = false, all_meta = false, no_tensors = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("path", o->path, "model file (.gguf, .safetensors) or HF folder")->required();
  sub->add_flag("--json", o->json, "print JSON instead of tables");
  sub->add_flag("--all-metadata", o->all_meta, "print every metadata key (arrays summarised)");
  sub->add_flag("--no-tensors", o->no_tensors, "omit the per-tensor table");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto opened = open_model(o->path);
    if (!opened.ok()) return fail(opened.status());
    const TensorStore& s = *opened;
    auto cfg = llama_config_from_store(s);
    const TokenizerFacts tok = tokenizer_facts(s);

    std::map<std::string, TypeTotals> by_type;
    TypeTotals all;
    for (const auto& t : s.tensors) {
      auto& bt = by_type[dtype_name(t.dtype)];
      bt.tensors++, bt.elements += t.numel(), bt.bytes += t.nbytes;
      all.tensors++, all.elements += t.numel(), all.bytes += t.nbytes;
    }
    const std::string arch = s.meta.get_string("general.architecture").value_or(cfg.ok() ? cfg->arch : "unknown");

    if (o->json) {
      nlohmann::json j;
      j["path"] = o->path;
      j["format"] = s.format;
      j["architecture"] = arch;
      j["parameters"] = all.elements;
      j["tensor_bytes"] = all.bytes;
      j["bits_per_weight"] = bpw(all.bytes, all.elements);
      if (cfg.ok()) {
        const LlamaConfig& c = *cfg;
        j["config"] = {{"arch", c.arch}, {"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                       {"intermediate_size", c.intermediate_size}, {"n_layers", c.n_layers},
                       {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
                       {"rope_theta", c.rope_theta}, {"rms_eps", c.rms_eps},
                       {"tie_embeddings", c.tie_embeddings}, {"attention_bias", c.attention_bias}};
      } else {
        j["config_error"] = cfg.status().message();
      }
      j["tokenizer"] = {{"model", tok.model}, {"vocab_size", tok.vocab}, {"chat_template", tok.chat_template}};
      nlohmann::json types = nlohmann::json::object();
      for (const auto& [name, bt] : by_type)
        types[name] = {{"tensors", bt.tensors}, {"elements", bt.elements}, {"bytes", bt.bytes},
                       {"bits_per_weight", bpw(bt.bytes, bt.elements)}};
      j["types"] = types;
      if (!o->no_tensors) {
        nlohmann::json ts = nlohmann::json::array();
        for (const auto& t : s.tensors)
          ts.push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape},
                        {"bytes", t.nbytes}, {"bits_per_weight", bpw(t.nbytes, t.numel())}});
        j["tensors"] = ts;
      }
      nlohmann::json meta = nlohmann::json::object();
      for (const auto& [k, v] : s.meta.entries()) {
        if (k == "hf.config_json") continue;
        if (!o->all_meta && (k.rfind("tokenizer.", 0) == 0) && v.type == MetaType::ARRAY) continue;
        meta[k] = v.summary(o->all_meta ? 4096 : 200);
      }
      j["metadata"] = meta;
      std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return EXIT_OK;
    }

    std::printf("file:          %s\n", o->path.c_str());
    std::printf("format:        %s\n", s.format.c_str());
    std::printf("architecture:  %s\n", arch.c_str());
    if (cfg.ok()) std::printf("config:        %s\n", cfg->summary().c_str());
    else std::printf("config:        (none: %s)\n", cfg.status().message().c_str());
    std::printf("parameters:    %s (%lld)\n", human_count(all.elements).c_str(), static_cast<long long>(all.elements));
    std::printf("tensor bytes:  %s, %.3f bits/weight\n", human_bytes(all.bytes).c_str(), bpw(all.bytes, all.elements));
    std::printf("tokenizer:     %s, %lld tokens, chat template %s\n", tok.model.empty() ? "(none)" : tok.model.c_str(),
                static_cast<long long>(tok.vocab), tok.chat_template ? "present" : "absent");
    std::printf("\n%-8s %8s %14s %12s %8s\n", "type", "tensors", "elements", "bytes", "bpw");
    for (const auto& [name, bt] : by_type)
      std::printf("%-8s %8lld %14lld %12s %8.3f\n", name.c_str(), static_cast<long long>(bt.tensors),
                  static_cast<long long>(bt.elements), human_bytes(bt.bytes).c_str(), bpw(bt.bytes, bt.elements));
    if (!o->no_tensors) {
      std::printf("\n%-44s %-6s %-20s %12s %7s\n", "tensor", "dtype", "shape", "bytes", "bpw");
      for (const auto& t : s.tensors)
        std::printf("%-44s %-6s %-20s %12llu %7.3f\n", t.name.c_str(), dtype_name(t.dtype), t.shape_string().c_str(),
                    static_cast<unsigned long long>(t.nbytes), bpw(t.nbytes, t.numel()));
    }
    std::printf("\nmetadata (%zu keys)\n", s.meta.size());
    for (const auto& [k, v] : s.meta.entries()) {
      if (k == "hf.config_json") continue;
      const std::string type =
          v.type == MetaType::ARRAY ? std::string("arr[") + meta_type_name(v.elem) + "]" : meta_type_name(v.type);
      std::printf("  %-40s %-9s %s\n", k.c_str(), type.c_str(), v.summary(o->all_meta ? 4096 : 60).c_str());
    }
    return EXIT_OK;
  };
}

}  // namespace ss::cli
