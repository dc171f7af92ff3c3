// `safeshrink train-tokenizer --input FILE... --vocab-size N --out DIR`: trains a byte-level BPE
// vocabulary (tokenizer.h train_bpe) on chat JSONL (each dialogue rendered as ChatML, so role names
// and newlines are learned; the special tokens themselves are cut out) and/or plain text files, and
// writes DIR/tokenizer.json + DIR/tokenizer_config.json. Not here: training logic (the library).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "safeshrink/buffer.h"
#include "safeshrink/chat_template.h"
#include "safeshrink/tokenizer.h"
#include "safeshrink/train_data.h"

namespace ss::cli {

namespace {

// Rendering of a whole dialogue (no trailing generation prompt).
ChatRenderOptions without_generation_prompt() {
  ChatRenderOptions o;
  o.add_generation_prompt = false;
  return o;
}

struct TrainTokenizerArgs {
  std::vector<std::string> inputs;
  std::string out;
  std::string split;
  int32_t vocab_size = 2048;
  int64_t min_pair_count = 2;
};

Status collect_texts(const TrainTokenizerArgs& a, std::vector<std::string>* texts) {
  for (const auto& path : a.inputs) {
    const bool jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
    if (jsonl) {
      SS_ASSIGN_OR_RETURN(auto records, read_chat_jsonl(path, a.split));
      for (const auto& r : records) {
        SS_ASSIGN_OR_RETURN(std::string text, render_chat(ChatFamily::CHATML, r.messages, without_generation_prompt()));
        texts->push_back(std::move(text));
      }
    } else {
      SS_ASSIGN_OR_RETURN(auto records, read_plain_text(path));
      for (auto& r : records) texts->push_back(std::move(r.text));
    }
  }
  if (texts->empty()) return invalid_argument("train-tokenizer: the inputs hold no text");
  return ok_status();
}

}  // namespace

RunFn add_train_tokenizer(CLI::App& app) {
  auto* sub = app.add_subcommand("train-tokenizer", "Train a byte-level BPE tokenizer (tokenizer.json) on JSONL chat data or text");
  auto a = std::make_shared<TrainTokenizerArgs>();
  sub->add_option("--input", a->inputs, "corpus files: .jsonl chat records or plain text (paragraphs)")->required()->expected(1, -1);
  sub->add_option("--vocab-size", a->vocab_size, "tokens in total, 256 bytes and 4 special tokens included (default 2048)")
      ->check(CLI::Range(260, 1 << 22));
  sub->add_option("--min-pair-count", a->min_pair_count, "stop when the best pair is rarer (default 2)")->check(CLI::Range(1, 1 << 30));
  sub->add_option("--split", a->split, "JSONL: keep only records of this split (default: all)");
  sub->add_option("--out", a->out, "output folder")->required();
  return [sub, a]() -> int {
    if (!sub->parsed()) return -1;
    std::vector<std::string> texts;
    if (Status s = collect_texts(*a, &texts); !s.ok()) return fail(s);
    BpeTrainConfig cfg;
    cfg.vocab_size = a->vocab_size;
    cfg.min_pair_count = a->min_pair_count;
    auto bpe = train_bpe(texts, cfg);
    if (!bpe.ok()) return fail(bpe.status());
    if (Status s = write_bpe_tokenizer_folder(*bpe, a->out); !s.ok()) return fail(s);
    auto check = Tokenizer::from_hf_folder(a->out);
    if (!check.ok()) return fail(check.status());
    std::printf("trained %zu tokens (%zu merges) on %zu texts -> %s/tokenizer.json\n", bpe->tokens.size(),
                bpe->merges.size(), texts.size(), a->out.c_str());
    return EXIT_OK;
  };
}

}  // namespace ss::cli
