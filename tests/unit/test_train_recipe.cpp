// Training recipes are parsed strictly: the committed recipes load with the values their files
// state, and every kind of mistake (unknown field, wrong type, out-of-range value, a stage that
// starts from a stage that does not exist) is refused with the field's path in the message.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "safeshrink/buffer.h"
#include "safeshrink/trainer.h"

using namespace ss;
using nlohmann::json;

namespace {

const std::string kRoot = SAFESHRINK_SOURCE_DIR;

json mini() {
  auto text = read_text_file(kRoot + "/data/recipes/tiny-chat-mini.json");
  EXPECT_TRUE(text.ok());
  return json::parse(*text);
}

std::string error_of(const json& j) {
  auto r = parse_train_recipe(j.dump(), "recipe.json", kRoot);
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.status().to_string();
}

}  // namespace

TEST(TrainRecipe, CommittedRecipesLoadWithTheirFileValues) {
  for (const char* name : {"tiny-chat.json", "tiny-chat-mini.json"}) {
    SCOPED_TRACE(name);
    const std::string path = kRoot + "/data/recipes/" + name;
    auto r = read_train_recipe(path, kRoot);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const json j = json::parse(*read_text_file(path));
    EXPECT_EQ(r->name, j["name"].get<std::string>());
    EXPECT_EQ(r->model.hidden_size, j["model"]["hidden_size"].get<int64_t>());
    EXPECT_EQ(r->model.n_layers, j["model"]["n_layers"].get<int64_t>());
    EXPECT_EQ(r->seq_len, j["data"]["seq_len"].get<int64_t>());
    ASSERT_EQ(r->stages.size(), j["stages"].size());
    for (size_t i = 0; i < r->stages.size(); ++i) {
      EXPECT_EQ(r->stages[i].steps, j["stages"][i]["steps"].get<int64_t>());
      EXPECT_DOUBLE_EQ(r->stages[i].optimizer.lr(), j["stages"][i]["optimizer"]["lr"].get<double>());
      EXPECT_EQ(r->stages[i].schedule.total_steps, r->stages[i].steps);
    }
    EXPECT_EQ(r->tokenizer.vocab_size, j["tokenizer"]["vocab_size"].get<int32_t>());
    EXPECT_EQ(r->sha256.size(), 64u);
  }
}

TEST(TrainRecipe, MistakesNameTheField) {
  json j = mini();
  j["stages"][0]["optimiser"] = j["stages"][0]["optimizer"];
  EXPECT_NE(error_of(j).find("stages[0].optimiser"), std::string::npos) << error_of(j);

  j = mini();
  j["model"]["hidden_size"] = "128";
  EXPECT_NE(error_of(j).find("model.hidden_size"), std::string::npos);

  j = mini();
  j["stages"][1]["optimizer"]["lr"] = -1;
  EXPECT_NE(error_of(j).find("stages[1].optimizer.lr"), std::string::npos);

  j = mini();
  j["stages"][1]["init"] = "no-such-stage";
  EXPECT_NE(error_of(j).find("stages[1].init"), std::string::npos);

  j = mini();
  j["model"]["n_heads"] = 3;  // 64 / 3 is not a head size
  EXPECT_NE(error_of(j).find("model.n_heads"), std::string::npos);

  j = mini();
  j["data"]["seq_len"] = 100000;
  EXPECT_NE(error_of(j).find("data.seq_len"), std::string::npos);

  j = mini();
  j["stages"][0]["schedule"]["kind"] = "exponential";
  EXPECT_NE(error_of(j).find("schedule.kind"), std::string::npos);

  EXPECT_FALSE(parse_train_recipe("{not json", "r.json", kRoot).ok());
}

TEST(TrainRecipe, RelativePathsResolveAgainstTheRoot) {
  auto r = parse_train_recipe(mini().dump(), "r.json", "/repo");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->resolve("data/corpus/x.jsonl"), "/repo/data/corpus/x.jsonl");
  EXPECT_EQ(r->resolve("/abs/x.jsonl"), "/abs/x.jsonl");
}
