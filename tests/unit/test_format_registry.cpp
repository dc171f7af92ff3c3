// Format registry: sniffing by magic bytes and folder contents (files built here byte by byte
// from the format descriptions), open_model / save_model dispatch, and errors that name what the
// first bytes were.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "safeshrink/formats.h"
#include "test_support.h"

using namespace ss;
namespace fs = std::filesystem;

namespace {

void write_raw(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

TensorStore small_store() {
  TensorStore s;
  auto t = Tensor::zeros("w", DType::F32, {2, 3});
  EXPECT_TRUE(t.ok());
  t->mutable_data_as<float>()[4] = 2.5f;
  EXPECT_TRUE(s.add(*t).ok());
  return s;
}

}  // namespace

TEST(FormatRegistry, ListsEveryFormatOnce) {
  std::vector<std::string> names;
  for (const auto& f : format_registry()) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"gguf", "safetensors", "hf-folder"}));
}

TEST(FormatRegistry, SniffsMagicBytesAndFolders) {
  const std::string dir = test::temp_dir("registry");
  // GGUF: the 4-byte magic "GGUF" then a version (the rest does not matter to sniffing).
  write_raw(dir + "/m.bin", std::string("GGUF\x03\x00\x00\x00", 8));
  EXPECT_EQ(*sniff_format(dir + "/m.bin"), "gguf");
  // safetensors: u64 length 2, then "{}".
  write_raw(dir + "/noext", std::string("\x02\x00\x00\x00\x00\x00\x00\x00{}", 10));
  EXPECT_EQ(*sniff_format(dir + "/noext"), "safetensors");
  // A length past the end is not safetensors.
  write_raw(dir + "/long", std::string("\xff\x00\x00\x00\x00\x00\x00\x00{}", 10));
  EXPECT_EQ(sniff_format(dir + "/long").status().code(), StatusCode::UNSUPPORTED);
  // Unknown bytes: the error shows them in hex and lists the known formats.
  write_raw(dir + "/junk", "\xde\xad\xbe\xef");
  auto junk = sniff_format(dir + "/junk");
  ASSERT_EQ(junk.status().code(), StatusCode::UNSUPPORTED);
  EXPECT_NE(junk.status().message().find("de ad be ef"), std::string::npos) << junk.status().message();
  EXPECT_NE(junk.status().message().find("gguf"), std::string::npos);
  EXPECT_NE(junk.status().message().find("safetensors"), std::string::npos);
  // A PyTorch zip checkpoint is named as such (and never unpickled).
  write_raw(dir + "/model.bin", std::string("PK\x03\x04", 4) + "archive/data.pkl");
  auto zip = sniff_format(dir + "/model.bin");
  EXPECT_NE(zip.status().message().find("zip"), std::string::npos) << zip.status().message();
  write_raw(dir + "/empty", "");
  EXPECT_EQ(sniff_format(dir + "/empty").status().code(), StatusCode::UNSUPPORTED);
  EXPECT_EQ(sniff_format(dir + "/missing").status().code(), StatusCode::NOT_FOUND);
  // Folders.
  const std::string folder = test::temp_dir("registry-folder");
  EXPECT_EQ(sniff_format(folder).status().code(), StatusCode::UNSUPPORTED);
  ASSERT_TRUE(write_safetensors(small_store(), folder + "/model.safetensors").ok());
  write_raw(folder + "/config.json", "{}");
  EXPECT_EQ(*sniff_format(folder), "hf-folder");
  write_raw(folder + "/model.safetensors.index.json", "{\"weight_map\": {\"w\": \"model.safetensors\"}}");
  EXPECT_EQ(*sniff_format(folder + "/model.safetensors.index.json"), "safetensors");
}

TEST(FormatRegistry, OpenAndSaveDispatch) {
  const std::string dir = test::temp_dir("registry-save");
  const TensorStore store = small_store();
  ASSERT_TRUE(save_model(store, dir + "/a.safetensors").ok());
  auto st = open_model(dir + "/a.safetensors");
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ(st->format, "safetensors");
  EXPECT_EQ(st->tensors[0].data_as<float>()[4], 2.5f);
  ASSERT_TRUE(save_model(store, dir + "/a.gguf").ok());
  auto gg = open_model(dir + "/a.gguf");
  ASSERT_TRUE(gg.ok()) << gg.status().to_string();
  EXPECT_EQ(gg->format, "gguf");
  EXPECT_EQ(gg->tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(gg->tensors[0].data_as<float>()[4], 2.5f);
  // Format named explicitly wins over the extension.
  ASSERT_TRUE(save_model(store, dir + "/named.bin", "safetensors").ok());
  EXPECT_EQ(*sniff_format(dir + "/named.bin"), "safetensors");
  EXPECT_EQ(save_model(store, dir + "/x.bin").code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(save_model(store, dir + "/x", "hf-folder").code(), StatusCode::UNSUPPORTED);
  EXPECT_EQ(save_model(store, dir + "/x", "onnx").code(), StatusCode::INVALID_ARGUMENT);
}
