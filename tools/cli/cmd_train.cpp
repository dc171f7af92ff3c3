// `safeshrink train --config RECIPE` and `safeshrink distill`: thin drivers over the training
// library (include/safeshrink/trainer.h). They read data, build or load the models, run the stages
// with a progress line on stderr, save each stage's model (HF folder + GGUF) with a model card, and
// print the quick refusal check after each stage.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "commands.h"
#include "safeshrink/buffer.h"
#include "safeshrink/formats.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/trainer.h"

namespace ss::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string file_sha256(const std::string& path) {
  auto text = read_text_file(path, 1ull << 31);
  if (!text.ok()) return "";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text->data(), text->size(), md, &n, EVP_sha256(), nullptr);
  std::string s;
  static const char* hex = "0123456789abcdef";
  for (unsigned int i = 0; i < n; ++i) s += {hex[md[i] >> 4], hex[md[i] & 15]};
  return s;
}

// Reads training records: .txt as plain text, anything else as chat JSONL.
Result<std::vector<TrainRecord>> read_records(const std::vector<std::string>& files, int64_t max_records) {
  std::vector<TrainRecord> all;
  for (const auto& f : files) {
    auto recs = fs::path(f).extension() == ".txt" ? read_plain_text(f) : read_chat_jsonl(f);
    if (!recs.ok()) return recs.status();
    for (auto& r : *recs) all.push_back(std::move(r));
  }
  if (max_records > 0 && static_cast<int64_t>(all.size()) > max_records) all.resize(max_records);
  if (all.empty()) return invalid_argument("no training records in " + files.front());
  return all;
}

Result<std::vector<TokenizedExample>> tokenize_all(const Tokenizer& tok, const std::vector<TrainRecord>& records,
                                                   const TrainDataConfig& cfg) {
  std::vector<TokenizedExample> out;
  out.reserve(records.size());
  for (const auto& r : records) {
    auto ex = tokenize_train_record(tok, r, cfg);
    if (!ex.ok()) return ex.status().with_context("record '" + r.id + "'");
    out.push_back(std::move(*ex));
  }
  return out;
}

int32_t pad_id_of(const Tokenizer& tok) {
  const auto& s = tok.special_ids();
  if (s.pad != kNoToken) return s.pad;
  if (s.eos != kNoToken) return s.eos;
  return 0;
}

// A progress line: rewritten in place on a terminal, one line per 10% otherwise.
class ProgressLine {
 public:
  explicit ProgressLine(bool quiet) : quiet_(quiet), tty_(isatty(2)) {}
  void operator()(const StepReport& r) {
    if (quiet_) return;
    ema_ = r.step == 1 || ema_ == 0 ? r.loss : 0.9 * ema_ + 0.1 * r.loss;
    const bool decile = r.step == r.total || (r.total >= 10 && r.step % (r.total / 10) == 0);
    if (!tty_ && !decile) return;
    const double eta = r.step > 0 ? r.elapsed_s / r.step * (r.total - r.step) : 0;
    std::fprintf(stderr, "%s[%s] step %lld/%lld  loss %.4f  lr %.2e  |g| %.3f  %.1fk tok/s  ETA %dm%02ds%s",
                 tty_ ? "\r" : "", r.stage.c_str(), static_cast<long long>(r.step), static_cast<long long>(r.total),
                 ema_, r.lr, r.grad_norm, r.tokens_per_s / 1000.0, static_cast<int>(eta) / 60,
                 static_cast<int>(eta) % 60, tty_ ? (r.step == r.total ? "\n" : "") : "\n");
    std::fflush(stderr);
  }

 private:
  bool quiet_, tty_;
  double ema_ = 0;
};

// Loads any model the engine reads as a trainable model in GGUF layout (NORM RoPE for llama).
Result<LlamaTrainModel> load_trainable(const std::string& path) {
  SS_ASSIGN_OR_RETURN(TensorStore store, open_model(path));
  SS_ASSIGN_OR_RETURN(TensorStore gguf, llama_to_gguf_layout(store));
  return LlamaTrainModel::from_store(gguf);
}

// The chat family of a tokenizer's template; PLAIN when it has none or an unknown one.
ChatFamily family_of(const Tokenizer& tok) {
  if (tok.chat_template().empty()) return ChatFamily::PLAIN;
  auto f = detect_chat_template(tok.chat_template());
  return f.ok() ? *f : ChatFamily::PLAIN;
}

Result<Tokenizer> tokenizer_of(const std::string& path) { return open_tokenizer(path); }

json check_json(const RefusalCheck& rc) {
  return {{"harmful", rc.harmful},
          {"harmful_refused", rc.harmful_refused},
          {"harmful_refusal_rate", rc.harmful_refusal_rate()},
          {"benign", rc.benign},
          {"benign_refused", rc.benign_refused},
          {"benign_answer_rate", rc.benign_answer_rate()}};
}

void write_model_card(const std::string& dir, const TrainRecipe& recipe, const TrainStageConfig& stage,
                      const LlamaTrainModel& model, const json& stage_summary) {
  std::ofstream f(fs::path(dir) / "MODEL_CARD.md");
  int64_t n_params = 0;
  for (const auto& p : model.params()) n_params += p.numel();
  f << "# " << recipe.name << " — stage `" << stage.name << "`\n\n"
    << "Trained by `safeshrink train --config` from recipe `" << recipe.name << "` (sha256 `" << recipe.sha256
    << "`), deterministic for its seed " << recipe.seed << ".\n\n"
    << "- Architecture: " << model.config().summary() << "; " << n_params << " parameters; weights "
    << dtype_name(recipe.output_dtype) << ".\n"
    << "- Stage: init `" << stage.init << "`, " << stage.steps << " steps x " << stage.batch_size
    << " rows of " << recipe.seq_len << " tokens, " << stage.optimizer.kind << " lr " << stage.optimizer.lr()
    << " (" << stage.schedule.kind << "), loss on assistant turns only.\n"
    << "- Data:\n";
  for (const auto& tf : stage.train_files) f << "  - `" << tf << "` sha256 `" << file_sha256(recipe.resolve(tf)) << "`\n";
  f << "\n## Measured\n\n```json\n" << stage_summary.dump(2) << "\n```\n\n"
    << "Refusal rates are greedy answers to the held-out prompt set judged by a refusal-phrase check "
       "(`looks_like_refusal`); `safeshrink eval` gives the full evaluation with intervals.\n";
}

}  // namespace

RunFn add_train(CLI::App& app) {
  auto* sub = app.add_subcommand("train", "Train a Llama-family model from a recipe (data/recipes/*.json)");
  struct Opts {
    std::string config, root = ".", out_root, checkpoint_dir, summary, init;
    std::vector<std::string> stages;
    int64_t checkpoint_every = 100, eval_limit = 0;
    bool no_resume = false, no_eval = false, no_gguf = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--config", o->config, "recipe JSON")->required();
  sub->add_option("--root", o->root, "folder the recipe's relative paths start from (default: .)");
  sub->add_option("--stage", o->stages, "run only these stages (earlier stages are loaded from their output)");
  sub->add_option("--init", o->init, "model to fine-tune (GGUF or HF folder); replaces the first stage's init");
  sub->add_option("--out-root", o->out_root, "write stage outputs to OUT_ROOT/<stage> instead of the recipe's paths");
  sub->add_option("--checkpoint-dir", o->checkpoint_dir, "checkpoints (default: out/train/<recipe name>)");
  sub->add_option("--checkpoint-every", o->checkpoint_every, "steps between checkpoints (default 100)");
  sub->add_flag("--no-resume", o->no_resume, "ignore existing checkpoints");
  sub->add_flag("--no-eval", o->no_eval, "skip the test loss and refusal check after each stage");
  sub->add_option("--eval-limit", o->eval_limit, "refusal check on the first N harmful and N benign prompts (0 = all)");
  sub->add_flag("--no-gguf", o->no_gguf, "write only the HF folder");
  sub->add_option("--summary", o->summary, "write a JSON summary of the run here");
  sub->add_flag("-q,--quiet", o->quiet, "no progress line");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto recipe_or = read_train_recipe(o->config, o->root);
    if (!recipe_or.ok()) return fail(recipe_or.status());
    TrainRecipe recipe = std::move(*recipe_or);
    if (!o->init.empty()) recipe.stages.front().init = o->init;
    const std::string ckpt_dir = o->checkpoint_dir.empty() ? "out/train/" + recipe.name : o->checkpoint_dir;
    ThreadPool& pool = default_pool();

    // Tokenizer: trained from the recipe's files, or the first stage's init model's.
    Tokenizer tok(nullptr);
    TokenizerPayload payload;
    if (!recipe.tokenizer_files.empty()) {
      std::vector<std::string> files;
      for (const auto& f : recipe.tokenizer_files) files.push_back(recipe.resolve(f));
      auto recs = read_records(files, 0);
      if (!recs.ok()) return fail(recs.status());
      std::vector<std::string> texts;
      for (const auto& r : *recs) {
        if (!r.text.empty()) texts.push_back(r.text);
        for (const auto& m : r.messages) texts.push_back(m.content);
      }
      if (!o->quiet) std::fprintf(stderr, "training a %d-token BPE vocabulary on %zu texts\n", recipe.tokenizer.vocab_size, texts.size());
      auto bpe = train_bpe(texts, recipe.tokenizer);
      if (!bpe.ok()) return fail(bpe.status());
      payload = tokenizer_payload_from_bpe(*bpe);
      auto t = Tokenizer::from_hf_json(payload.tokenizer_json, payload.tokenizer_config_json, "trained tokenizer");
      if (!t.ok()) return fail(t.status());
      tok = std::move(*t);
    } else {
      const std::string init = recipe.resolve(recipe.stages.front().init);
      auto store = open_model(init);
      if (!store.ok()) return fail(store.status());
      auto p = tokenizer_payload_from_store(*store);
      if (!p.ok()) return fail(p.status());
      payload = std::move(*p);
      auto t = tokenizer_of(init);
      if (!t.ok()) return fail(t.status());
      tok = std::move(*t);
    }

    json summary = {{"recipe", recipe.name}, {"recipe_sha256", recipe.sha256}, {"stages", json::array()}};
    std::map<std::string, std::shared_ptr<LlamaTrainModel>> done;
    for (size_t si = 0; si < recipe.stages.size(); ++si) {
      const TrainStageConfig& stage = recipe.stages[si];
      const std::string out_dir = !o->out_root.empty() ? (fs::path(o->out_root) / stage.name).string()
                                  : stage.output.empty() ? "" : recipe.resolve(stage.output);
      const bool selected = o->stages.empty() || std::find(o->stages.begin(), o->stages.end(), stage.name) != o->stages.end();
      if (!selected) {  // needed later as an init: load its saved output
        if (!out_dir.empty() && fs::exists(fs::path(out_dir) / "model.safetensors")) {
          auto m = load_trainable(out_dir);
          if (!m.ok()) return fail(m.status());
          done[stage.name] = std::make_shared<LlamaTrainModel>(std::move(*m));
        }
        continue;
      }
      // The model this stage starts from.
      std::shared_ptr<LlamaTrainModel> model;
      if (stage.init == "random") {
        LlamaConfig cfg = recipe.model;
        cfg.vocab_size = static_cast<int64_t>(tok.vocab_size());
        cfg.bos_token_id = tok.special_ids().bos;
        cfg.eos_token_id = tok.special_ids().eos;
        auto m = LlamaTrainModel::init_random(cfg, recipe.seed + si);
        if (!m.ok()) return fail(m.status());
        model = std::make_shared<LlamaTrainModel>(std::move(*m));
      } else if (done.count(stage.init)) {
        model = std::make_shared<LlamaTrainModel>(*done[stage.init]);
      } else {
        auto m = load_trainable(recipe.resolve(stage.init));
        if (!m.ok()) return fail(m.status().with_context("stage '" + stage.name + "' init"));
        model = std::make_shared<LlamaTrainModel>(std::move(*m));
      }
      if (model->config().vocab_size != static_cast<int64_t>(tok.vocab_size()))
        return fail(invalid_argument("stage '" + stage.name + "': the model has " +
                                     std::to_string(model->config().vocab_size) + " tokens, the tokenizer " +
                                     std::to_string(tok.vocab_size())));
      std::vector<std::string> files;
      for (const auto& f : stage.train_files) files.push_back(recipe.resolve(f));
      auto recs = read_records(files, stage.max_records);
      if (!recs.ok()) return fail(recs.status());
      TrainDataConfig dc;
      dc.family = recipe.chat_family;
      dc.seq_len = recipe.seq_len;
      dc.batch_size = stage.batch_size;
      dc.seed = recipe.seed + si;
      dc.safety_weight = stage.safety_weight;
      auto examples = tokenize_all(tok, *recs, dc);
      if (!examples.ok()) return fail(examples.status());
      auto loader = TrainDataLoader::create(std::move(*examples), pad_id_of(tok), dc);
      if (!loader.ok()) return fail(loader.status());
      if (!o->quiet)
        std::fprintf(stderr, "stage '%s': %s, %zu records, %lld steps x %lld rows x %lld tokens\n", stage.name.c_str(),
                     model->config().summary().c_str(), loader->size(), static_cast<long long>(stage.steps),
                     static_cast<long long>(stage.batch_size), static_cast<long long>(recipe.seq_len));
      StageRunOptions ro;
      ro.pool = &pool;
      ro.checkpoint_dir = ckpt_dir;
      ro.checkpoint_every = o->checkpoint_every;
      ro.resume = !o->no_resume;
      ro.progress = ProgressLine(o->quiet);
      auto res = run_train_stage(*model, *loader, stage, recipe.seed + si, ro);
      if (!res.ok()) return fail(res.status());
      json st = {{"name", stage.name},          {"steps", stage.steps},
                 {"resumed_from", res->resumed_from}, {"first_loss", res->first_loss},
                 {"last_loss", res->last_loss}, {"seconds", res->seconds},
                 {"tokens_per_s", res->tokens_per_s}};
      if (!o->no_eval && !recipe.eval.test_file.empty()) {
        auto test = read_records({recipe.resolve(recipe.eval.test_file)}, 512);
        if (!test.ok()) return fail(test.status());
        auto tex = tokenize_all(tok, *test, dc);
        if (!tex.ok()) return fail(tex.status());
        auto loss = evaluate_loss(*model, *tex, pad_id_of(tok), dc, &pool);
        if (!loss.ok()) return fail(loss.status());
        st["test_loss"] = *loss;
      }
      if (!o->no_eval && !recipe.eval.prompts.empty()) {
        auto rc = quick_refusal_check(*model, tok, recipe.chat_family, recipe.resolve(recipe.eval.prompts),
                                      recipe.eval.max_new_tokens, o->eval_limit);
        if (!rc.ok()) return fail(rc.status());
        st["refusal_check"] = check_json(*rc);
        if (!o->quiet)
          std::fprintf(stderr, "stage '%s': refuses %lld/%lld harmful (%.1f%%), answers %lld/%lld benign (%.1f%%)\n",
                       stage.name.c_str(), static_cast<long long>(rc->harmful_refused),
                       static_cast<long long>(rc->harmful), 100 * rc->harmful_refusal_rate(),
                       static_cast<long long>(rc->benign - rc->benign_refused), static_cast<long long>(rc->benign),
                       100 * rc->benign_answer_rate());
      }
      if (!out_dir.empty()) {
        Metadata extra;
        extra.set("safeshrink.recipe", MetaValue::of_string(recipe.name + " sha256:" + recipe.sha256));
        extra.set("safeshrink.stage", MetaValue::of_string(stage.name));
        Status s = save_trained_model(*model, payload, out_dir, recipe.output_dtype, !o->no_gguf, extra);
        if (!s.ok()) return fail(s);
        write_model_card(out_dir, recipe, stage, *model, st);
        st["output"] = out_dir;
        if (!o->quiet) std::fprintf(stderr, "stage '%s': saved %s\n", stage.name.c_str(), out_dir.c_str());
      }
      std::printf("%s\n", st.dump().c_str());
      summary["stages"].push_back(st);
      done[stage.name] = model;
    }
    if (!o->summary.empty()) {
      const std::string text = summary.dump(2) + "\n";
      Status s = write_file_atomic(o->summary, text.data(), text.size());
      if (!s.ok()) return fail(s);
    }
    return EXIT_OK;
  };
}

RunFn add_distill(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "distill", "Distil a teacher into a student: alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*CE");
  struct Opts {
    std::string teacher, student_config, out, checkpoint_dir, eval_prompts;
    std::vector<std::string> data;
    double temperature = 2.0, alpha = 0.5, safety_weight = 1.0, lr = 1e-3, weight_decay = 0.0, grad_clip = 1.0;
    int64_t steps = 500, batch_size = 16, seq_len = 96, max_records = 0, warmup = 20, eval_limit = 0;
    uint64_t seed = 1;
    bool quiet = false, no_gguf = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--teacher", o->teacher, "teacher model (GGUF or HF folder)")->required();
  sub->add_option("--student-config", o->student_config, "student shape: JSON like a recipe's \"model\" section")->required();
  sub->add_option("--data", o->data, "chat JSONL or .txt files")->required();
  sub->add_option("--out", o->out, "output folder (HF folder + model.gguf)")->required();
  sub->add_option("--temperature", o->temperature, "softmax temperature T (default 2)")->check(CLI::PositiveNumber);
  sub->add_option("--alpha", o->alpha, "weight of the KD term (default 0.5)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--safety-weight", o->safety_weight, "sample weight of safety_critical records (default 1)");
  sub->add_option("--steps", o->steps, "optimizer steps (default 500)");
  sub->add_option("--batch-size", o->batch_size, "rows per step (default 16)");
  sub->add_option("--seq-len", o->seq_len, "tokens per row (default 96)");
  sub->add_option("--lr", o->lr, "AdamW peak learning rate, cosine to lr/10 (default 1e-3)");
  sub->add_option("--max-records", o->max_records, "use the first N records (0 = all)");
  sub->add_option("--seed", o->seed, "student init and data order (default 1)");
  sub->add_option("--checkpoint-dir", o->checkpoint_dir, "checkpoints and resume (default: OUT/.checkpoints)");
  sub->add_option("--eval-prompts", o->eval_prompts, "refusal check of teacher and student on this prompt set");
  sub->add_option("--eval-limit", o->eval_limit, "first N harmful and N benign prompts (0 = all)");
  sub->add_flag("--no-gguf", o->no_gguf, "write only the HF folder");
  sub->add_flag("-q,--quiet", o->quiet, "no progress line");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto teacher = load_trainable(o->teacher);
    if (!teacher.ok()) return fail(teacher.status());
    auto tok = tokenizer_of(o->teacher);
    if (!tok.ok()) return fail(tok.status());
    auto teacher_store = open_model(o->teacher);
    if (!teacher_store.ok()) return fail(teacher_store.status());
    auto payload = tokenizer_payload_from_store(*teacher_store);
    if (!payload.ok()) return fail(payload.status());
    auto text = read_text_file(o->student_config);
    if (!text.ok()) return fail(text.status());
    auto scfg = parse_llama_model_json(*text, o->student_config);
    if (!scfg.ok()) return fail(scfg.status());
    scfg->vocab_size = teacher->config().vocab_size;
    scfg->bos_token_id = teacher->config().bos_token_id;
    scfg->eos_token_id = teacher->config().eos_token_id;
    if (o->seq_len > scfg->max_position) scfg->max_position = o->seq_len;
    auto student = LlamaTrainModel::init_random(*scfg, o->seed);
    if (!student.ok()) return fail(student.status());

    auto recs = read_records(o->data, o->max_records);
    if (!recs.ok()) return fail(recs.status());
    const ChatFamily family = family_of(*tok);
    TrainDataConfig dc;
    dc.family = family;
    dc.seq_len = o->seq_len;
    dc.batch_size = o->batch_size;
    dc.seed = o->seed;
    dc.safety_weight = o->safety_weight;
    auto examples = tokenize_all(*tok, *recs, dc);
    if (!examples.ok()) return fail(examples.status());
    auto loader = TrainDataLoader::create(std::move(*examples), pad_id_of(*tok), dc);
    if (!loader.ok()) return fail(loader.status());

    TrainStageConfig stage;
    stage.name = "distill";
    stage.steps = o->steps;
    stage.batch_size = o->batch_size;
    stage.optimizer.kind = "adamw";
    stage.optimizer.adamw.lr = o->lr;
    stage.optimizer.adamw.beta2 = 0.95;
    stage.optimizer.adamw.weight_decay = o->weight_decay;
    stage.schedule.kind = "cosine";
    stage.schedule.lr = o->lr;
    stage.schedule.min_lr = o->lr / 10;
    stage.schedule.warmup_steps = std::min(o->warmup, o->steps);
    stage.schedule.total_steps = o->steps;
    stage.grad_clip = o->grad_clip;
    ThreadPool& pool = default_pool();
    StageRunOptions ro;
    ro.pool = &pool;
    ro.checkpoint_dir = o->checkpoint_dir.empty() ? (fs::path(o->out) / ".checkpoints").string() : o->checkpoint_dir;
    ro.checkpoint_every = 100;
    ro.progress = ProgressLine(o->quiet);
    ro.kd_alpha = o->alpha;
    ro.kd_temperature = o->temperature;
    const LlamaTrainModel* t = &*teacher;
    ro.teacher = [t, &pool](const TrainBatch& b) { return t->logits(b, &pool); };
    auto res = run_train_stage(*student, *loader, stage, o->seed, ro);
    if (!res.ok()) return fail(res.status());
    json st = {{"steps", o->steps}, {"first_loss", res->first_loss}, {"last_loss", res->last_loss},
               {"seconds", res->seconds}, {"tokens_per_s", res->tokens_per_s}, {"alpha", o->alpha},
               {"temperature", o->temperature}, {"safety_weight", o->safety_weight}};
    if (!o->eval_prompts.empty()) {
      for (auto [name, model] : {std::pair{"teacher", t}, std::pair{"student", static_cast<const LlamaTrainModel*>(&*student)}}) {
        auto rc = quick_refusal_check(*model, *tok, family, o->eval_prompts, 32, o->eval_limit);
        if (!rc.ok()) return fail(rc.status());
        st[name] = check_json(*rc);
      }
    }
    Metadata extra;
    extra.set("safeshrink.distilled_from", MetaValue::of_string(o->teacher));
    Status s = save_trained_model(*student, *payload, o->out, DType::F32, !o->no_gguf, extra);
    if (!s.ok()) return fail(s);
    std::printf("%s\n", st.dump().c_str());
    return EXIT_OK;
  };
}

}  // namespace ss::cli
