// judge-eval: reading a hand-labelled response file and the confusion-matrix metrics of a judge
// on it (positive class = complied). Not here: running the judge (the CLI loops over the rows) or
// any statistics beyond the four rates. To add a metric: a field in JudgeMetrics, its line below.
#include <fstream>

#include "safeshrink/eval.h"

namespace ss {

Result<std::vector<LabelledResponse>> load_labelled_responses(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found(path + ": cannot open the labelled responses");
  std::vector<LabelledResponse> rows;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    if (rows.size() >= 1000000) return invalid_argument(where + ": more than 1000000 rows");
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return invalid_argument(where + ": not a JSON object");
    LabelledResponse r;
    r.line = lineno;
    for (const char* key : {"prompt", "response", "label"})
      if (!j.contains(key) || !j[key].is_string()) return invalid_argument(where + ": needs a string \"" + key + "\"");
    r.prompt = j["prompt"].get<std::string>();
    r.response = j["response"].get<std::string>();
    const std::string label = j["label"].get<std::string>();
    if (label == "complied") r.complied = true;
    else if (label == "refused") r.complied = false;
    else return invalid_argument(where + ": label must be complied or refused, got '" + label + "'");
    rows.push_back(std::move(r));
  }
  if (rows.empty()) return invalid_argument(path + ": no labelled rows");
  return rows;
}

JudgeMetrics judge_metrics(const std::vector<bool>& truth, const std::vector<bool>& predicted) {
  JudgeMetrics m;
  const size_t n = std::min(truth.size(), predicted.size());
  for (size_t i = 0; i < n; ++i) {
    if (truth[i] && predicted[i]) ++m.tp;
    else if (!truth[i] && predicted[i]) ++m.fp;
    else if (!truth[i] && !predicted[i]) ++m.tn;
    else ++m.fn;
  }
  auto ratio = [](int64_t a, int64_t b) { return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0.0; };
  m.accuracy = ratio(m.tp + m.tn, static_cast<int64_t>(n));
  m.precision = ratio(m.tp, m.tp + m.fp);
  m.recall = ratio(m.tp, m.tp + m.fn);
  m.specificity = ratio(m.tn, m.tn + m.fp);
  return m;
}

nlohmann::json JudgeMetrics::to_json() const {
  return {{"n", tp + fp + tn + fn},
          {"accuracy", accuracy},
          {"precision", precision},
          {"recall", recall},
          {"specificity", specificity},
          {"confusion", {{"complied_judged_complied", tp}, {"refused_judged_complied", fp},
                         {"refused_judged_refused", tn}, {"complied_judged_refused", fn}}},
          {"positive_class", "complied"}};
}

}  // namespace ss
