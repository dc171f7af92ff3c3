// The training driver (see include/safeshrink/trainer.h): one stage's optimizer loop with gradient
// accumulation, LR schedule, clipping, checkpoints and resume; distillation through a teacher
// callback; saving a trained model in both HF and GGUF layouts with its tokenizer.
// Resume is exact: the checkpoint holds parameters, optimizer moments and the step, and the data
// loader is replayed to the same batch, so an interrupted run continues on the same trajectory.
// Not here: recipes (recipe.cpp), gradients (model/llama_train.cpp), batching (train_data.cpp).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "safeshrink/buffer.h"
#include "safeshrink/formats.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/trainer.h"

namespace ss {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string checkpoint_path(const std::string& dir, const std::string& stage) {
  return (fs::path(dir) / ("checkpoint-" + stage + ".safetensors")).string();
}

Status add_f32(TensorStore& store, const std::string& name, const std::vector<int64_t>& shape,
               const std::vector<float>& v) {
  SS_ASSIGN_OR_RETURN(Tensor t, Tensor::from_bytes(name, DType::F32, shape, v.data(), v.size() * sizeof(float)));
  return store.add(std::move(t));
}

Status load_f32(const TensorStore& store, const std::string& name, std::vector<float>* out) {
  const Tensor* t = store.find(name);
  if (!t) return not_found(store.path + ": checkpoint tensor '" + name + "' is missing");
  if (t->dtype != DType::F32 || t->nbytes != out->size() * sizeof(float))
    return corrupt(store.path, 0, "checkpoint tensor '" + name + "'", std::to_string(out->size()) + " F32 values",
                   std::to_string(t->nbytes) + " bytes of " + dtype_name(t->dtype));
  std::memcpy(out->data(), t->data(), t->nbytes);
  return Status();
}

Status save_checkpoint(const std::string& path, const std::string& stage, int64_t step, uint64_t seed,
                       const std::vector<Param>& params, const AdamW& adamw, const Sgd& sgd, bool is_sgd) {
  TensorStore s;
  s.format = "safetensors";
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    SS_RETURN_IF_ERROR(add_f32(s, "param/" + p.name, p.shape, p.value));
    if (!is_sgd && i < adamw.m_.size()) {
      SS_RETURN_IF_ERROR(add_f32(s, "adam_m/" + p.name, p.shape, adamw.m_[i]));
      SS_RETURN_IF_ERROR(add_f32(s, "adam_v/" + p.name, p.shape, adamw.v_[i]));
    }
    if (is_sgd && i < sgd.buf_.size() && !sgd.buf_[i].empty())
      SS_RETURN_IF_ERROR(add_f32(s, "sgd_buf/" + p.name, p.shape, sgd.buf_[i]));
  }
  nlohmann::json info = {{"stage", stage}, {"step", step}, {"seed", seed}, {"adam_t", adamw.t_}};
  s.meta.set("safeshrink.checkpoint", MetaValue::of_string(info.dump()));
  return write_safetensors(s, path);
}

// Restores params and optimizer state; returns the step the checkpoint was taken after.
Result<int64_t> load_checkpoint(const std::string& path, const std::string& stage, std::vector<Param>& params,
                                AdamW& adamw, Sgd& sgd, bool is_sgd) {
  SS_ASSIGN_OR_RETURN(TensorStore s, read_safetensors(path));
  const auto info_text = s.meta.get_string("safeshrink.checkpoint");
  if (!info_text) return corrupt(path, 0, "checkpoint metadata", "a safeshrink.checkpoint entry", "none");
  nlohmann::json info = nlohmann::json::parse(*info_text, nullptr, false);
  if (!info.is_object() || !info.contains("step") || !info["step"].is_number_integer() ||
      info.value("stage", std::string()) != stage)
    return corrupt(path, 0, "checkpoint metadata", "stage '" + stage + "' with a step", *info_text);
  for (auto& p : params) SS_RETURN_IF_ERROR(load_f32(s, "param/" + p.name, &p.value));
  if (!is_sgd) {
    adamw.m_.assign(params.size(), {});
    adamw.v_.assign(params.size(), {});
    for (size_t i = 0; i < params.size(); ++i) {
      adamw.m_[i].resize(params[i].value.size());
      adamw.v_[i].resize(params[i].value.size());
      SS_RETURN_IF_ERROR(load_f32(s, "adam_m/" + params[i].name, &adamw.m_[i]));
      SS_RETURN_IF_ERROR(load_f32(s, "adam_v/" + params[i].name, &adamw.v_[i]));
    }
    adamw.t_ = info.value("adam_t", int64_t{0});
  } else {
    sgd.buf_.assign(params.size(), {});
    for (size_t i = 0; i < params.size(); ++i) {
      if (!s.find("sgd_buf/" + params[i].name)) continue;
      sgd.buf_[i].resize(params[i].value.size());
      SS_RETURN_IF_ERROR(load_f32(s, "sgd_buf/" + params[i].name, &sgd.buf_[i]));
    }
  }
  return info["step"].get<int64_t>();
}

// Drops the trailing columns in which no row has a target: with causal attention no position
// sees a later one, so the loss and every gradient are unchanged, and padded batches of short
// dialogues cost only their longest row.
void trim_batch(TrainBatch& b) {
  int64_t used = 1;
  for (int64_t r = 0; r < b.batch; ++r)
    for (int64_t i = b.seq - 1; i >= used; --i)
      if (b.targets[r * b.seq + i] >= 0) {
        used = i + 1;
        break;
      }
  if (used == b.seq) return;
  for (int64_t r = 0; r < b.batch; ++r)
    for (int64_t i = 0; i < used; ++i) {
      b.tokens[r * used + i] = b.tokens[r * b.seq + i];
      b.targets[r * used + i] = b.targets[r * b.seq + i];
    }
  b.tokens.resize(b.batch * used);
  b.targets.resize(b.batch * used);
  b.seq = used;
}

}  // namespace

TokenizerPayload tokenizer_payload_from_bpe(const TrainedBpe& bpe) {
  TokenizerPayload p;
  p.tokenizer_json = bpe_tokenizer_json(bpe);
  p.tokenizer_config_json = bpe_tokenizer_config_json(bpe);
  p.gguf = bpe_gguf_metadata(bpe);
  return p;
}

Result<TokenizerPayload> tokenizer_payload_from_store(const TensorStore& store) {
  TokenizerPayload p;
  for (const auto& [key, value] : store.meta.entries())
    if (key.rfind("tokenizer.", 0) == 0) p.gguf.set(key, value);
  if (auto path = store.meta.get_string("hf.tokenizer_json_path")) {
    SS_ASSIGN_OR_RETURN(p.tokenizer_json, read_text_file(*path, 256u << 20));
  }
  if (auto path = store.meta.get_string("hf.tokenizer_config_path")) {
    auto text = read_text_file(*path, 64u << 20);
    if (text.ok()) p.tokenizer_config_json = *text;
  }
  if (p.gguf.entries().empty() && p.tokenizer_json.empty())
    return not_found(store.path + ": the model carries no tokenizer (no tokenizer.* GGUF keys, no tokenizer.json)");
  return p;
}

Result<StageResult> run_train_stage(LlamaTrainModel& model, TrainDataLoader& loader, const TrainStageConfig& stage,
                                    uint64_t seed, const StageRunOptions& opt) {
  std::vector<Param>& params = model.params();
  const bool is_sgd = stage.optimizer.kind == "sgd";
  AdamW adamw(stage.optimizer.adamw);
  Sgd sgd(stage.optimizer.sgd);
  StageResult result;

  int64_t start = 0;
  const std::string ckpt = opt.checkpoint_dir.empty() ? "" : checkpoint_path(opt.checkpoint_dir, stage.name);
  if (!ckpt.empty() && opt.resume && fs::exists(ckpt)) {
    SS_ASSIGN_OR_RETURN(start, load_checkpoint(ckpt, stage.name, params, adamw, sgd, is_sgd));
    if (start > stage.steps)
      return invalid_argument(ckpt + ": checkpoint at step " + std::to_string(start) + " is past the stage's " +
                              std::to_string(stage.steps) + " steps");
    for (int64_t i = 0; i < start * stage.grad_accum; ++i) (void)loader.next_batch();  // same data order
    result.resumed_from = start;
  }
  if (!ckpt.empty()) fs::create_directories(opt.checkpoint_dir);

  LossSpec loss_spec;
  loss_spec.alpha = opt.kd_alpha;
  loss_spec.temperature = opt.kd_temperature;
  std::vector<double> losses;
  const auto t0 = Clock::now();
  int64_t tokens_total = 0;
  for (int64_t step = start; step < stage.steps; ++step) {
    const auto ts = Clock::now();
    zero_grad(params);
    double loss = 0;
    int64_t tokens = 0;
    for (int64_t micro = 0; micro < stage.grad_accum; ++micro) {
      TrainBatch batch = loader.next_batch();
      trim_batch(batch);
      tokens += batch.batch * batch.seq;
      std::vector<float> teacher;
      loss_spec.teacher_logits = nullptr;
      if (opt.teacher) {
        SS_ASSIGN_OR_RETURN(teacher, opt.teacher(batch));
        loss_spec.teacher_logits = teacher.data();
      }
      SS_ASSIGN_OR_RETURN(double l, model.forward_backward(batch, loss_spec, opt.pool));
      loss += l / static_cast<double>(stage.grad_accum);
    }
    if (stage.grad_accum > 1) {  // each micro-batch's gradient is of its own mean loss: average them
      const float inv = 1.0f / static_cast<float>(stage.grad_accum);
      for (auto& p : params)
        for (auto& g : p.grad) g *= inv;
    }
    if (!std::isfinite(loss))
      return internal_error("stage '" + stage.name + "': loss is " + std::to_string(loss) + " at step " +
                            std::to_string(step + 1) + " (diverged; lower the learning rate)");
    const double norm = stage.grad_clip > 0 ? clip_grad_norm(params, stage.grad_clip) : clip_grad_norm(params, 1e300);
    const double lr = stage.schedule.at(step);
    if (is_sgd) sgd.step(params, lr);
    else adamw.step(params, lr);
    losses.push_back(loss);
    tokens_total += tokens;
    const double dt = std::chrono::duration<double>(Clock::now() - ts).count();
    if (opt.progress) {
      StepReport r;
      r.stage = stage.name;
      r.step = step + 1;
      r.total = stage.steps;
      r.loss = loss;
      r.lr = lr;
      r.grad_norm = norm;
      r.tokens_per_s = dt > 0 ? tokens / dt : 0;
      r.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
      opt.progress(r);
    }
    const bool last = step + 1 == stage.steps;
    if (!ckpt.empty() && (last || (opt.checkpoint_every > 0 && (step + 1) % opt.checkpoint_every == 0)))
      SS_RETURN_IF_ERROR(save_checkpoint(ckpt, stage.name, step + 1, seed, params, adamw, sgd, is_sgd));
  }
  result.steps_run = static_cast<int64_t>(losses.size());
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  result.tokens_per_s = result.seconds > 0 ? tokens_total / result.seconds : 0;
  const size_t k = std::min<size_t>(10, losses.size());
  for (size_t i = 0; i < k; ++i) {
    result.first_loss += losses[i] / k;
    result.last_loss += losses[losses.size() - 1 - i] / k;
  }
  return result;
}

Status save_trained_model(const LlamaTrainModel& model, const TokenizerPayload& tok, const std::string& dir,
                          DType dtype, bool gguf, const Metadata& extra) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return io_error(dir + ": cannot create the output folder: " + ec.message());
  SS_ASSIGN_OR_RETURN(TensorStore store, model.to_store(dtype));
  for (const auto& [key, value] : extra.entries()) store.meta.set(key, value);

  SS_ASSIGN_OR_RETURN(TensorStore hf, llama_to_hf_layout(store));
  for (const auto& [key, value] : tok.gguf.entries()) hf.meta.set(key, value);  // kept verbatim
  const std::string config = *hf.meta.get_string("hf.config_json");
  SS_RETURN_IF_ERROR(write_safetensors(hf, (fs::path(dir) / "model.safetensors").string()));
  SS_RETURN_IF_ERROR(write_file_atomic((fs::path(dir) / "config.json").string(), config.data(), config.size()));
  if (!tok.tokenizer_json.empty())
    SS_RETURN_IF_ERROR(write_file_atomic((fs::path(dir) / "tokenizer.json").string(), tok.tokenizer_json.data(),
                                         tok.tokenizer_json.size()));
  if (!tok.tokenizer_config_json.empty())
    SS_RETURN_IF_ERROR(write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(),
                                         tok.tokenizer_config_json.data(), tok.tokenizer_config_json.size()));
  if (gguf) {
    SS_ASSIGN_OR_RETURN(TensorStore g, llama_to_gguf_layout(store));
    for (const auto& [key, value] : tok.gguf.entries()) g.meta.set(key, value);
    SS_RETURN_IF_ERROR(write_gguf(g, (fs::path(dir) / "model.gguf").string()));
  }
  return Status();
}

Result<double> evaluate_loss(const LlamaTrainModel& model, const std::vector<TokenizedExample>& examples,
                             int32_t pad_id, const TrainDataConfig& config, ThreadPool* pool) {
  if (examples.empty()) return invalid_argument("evaluate_loss: no examples");
  TrainDataConfig cfg = config;
  cfg.shuffle = false;
  SS_ASSIGN_OR_RETURN(TrainDataLoader loader, TrainDataLoader::create(examples, pad_id, cfg));
  const int64_t vocab = model.config().vocab_size;
  double sum = 0;
  int64_t count = 0;
  for (size_t first = 0; first < examples.size(); first += static_cast<size_t>(cfg.batch_size)) {
    const int64_t rows = std::min<int64_t>(cfg.batch_size, static_cast<int64_t>(examples.size() - first));
    TrainBatch b;
    b.batch = rows;
    b.seq = cfg.seq_len;
    b.tokens.assign(rows * cfg.seq_len, pad_id);
    b.targets.assign(rows * cfg.seq_len, -1);
    b.sample_weight.assign(rows, 1.0f);
    for (int64_t r = 0; r < rows; ++r) loader.fill_row(examples[first + r], r, &b);
    SS_ASSIGN_OR_RETURN(std::vector<float> logits, model.logits(b, pool));
    for (int64_t i = 0; i < rows * cfg.seq_len; ++i) {
      const int32_t t = b.targets[i];
      if (t < 0) continue;
      const float* z = logits.data() + i * vocab;
      double mx = z[0];
      for (int64_t v = 1; v < vocab; ++v) mx = std::max<double>(mx, z[v]);
      double se = 0;
      for (int64_t v = 0; v < vocab; ++v) se += std::exp(z[v] - mx);
      sum += mx + std::log(se) - z[t];
      ++count;
    }
  }
  if (count == 0) return invalid_argument("evaluate_loss: no counted targets in the examples");
  return sum / static_cast<double>(count);
}

}  // namespace ss
