// Static pickle scanner: walks a pickle opcode stream (protocols 0-5, every opcode of
// Lib/pickletools.py) with a small symbolic stack and memo, so that STACK_GLOBAL operands are
// resolved from the string constants that reach it (also through PUT/GET/MEMOIZE), and reports
// every global the stream imports (GLOBAL, STACK_GLOBAL, INST) and what it calls (REDUCE, OBJ,
// NEWOBJ, INST). Nothing is unpickled. Several pickles in a row (legacy torch.save) are walked one
// after the other. Not here: zip archives (scan_zip.cpp) and printing. To trust one more import:
// a row in kAllowed; to call one more entry point dangerous: a row in kCriticalModules/kCriticalNames.
#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>

#include "safeshrink/integrity.h"

namespace ss {
namespace {

// What torch.save of tensors, parameters and state dicts needs (and the protocol 0-2 helpers that
// Python's own pickler emits for builtin containers and bytes).
constexpr const char* kAllowed[][2] = {
    {"torch._utils", "_rebuild_tensor"}, {"torch._utils", "_rebuild_tensor_v2"}, {"torch._utils", "_rebuild_tensor_v3"},
    {"torch._utils", "_rebuild_parameter"}, {"torch._utils", "_rebuild_parameter_with_state"},
    {"torch._utils", "_rebuild_qtensor"}, {"torch._utils", "_rebuild_sparse_tensor"},
    {"torch._utils", "_rebuild_meta_tensor_no_storage"}, {"torch._utils", "_rebuild_nested_tensor"},
    {"torch", "FloatStorage"}, {"torch", "HalfStorage"}, {"torch", "BFloat16Storage"}, {"torch", "DoubleStorage"},
    {"torch", "LongStorage"}, {"torch", "IntStorage"}, {"torch", "ShortStorage"}, {"torch", "CharStorage"},
    {"torch", "ByteStorage"}, {"torch", "BoolStorage"}, {"torch", "ComplexFloatStorage"},
    {"torch", "ComplexDoubleStorage"}, {"torch", "QInt8Storage"}, {"torch", "QUInt8Storage"},
    {"torch", "QInt32Storage"}, {"torch", "UntypedStorage"}, {"torch.storage", "UntypedStorage"},
    {"torch.storage", "TypedStorage"}, {"torch", "Size"}, {"torch", "device"}, {"torch", "float32"},
    {"torch", "float16"}, {"torch", "bfloat16"}, {"torch", "float64"}, {"torch", "int64"}, {"torch", "int32"},
    {"torch", "int16"}, {"torch", "int8"}, {"torch", "uint8"}, {"torch", "bool"}, {"torch", "complex64"},
    {"torch", "complex128"}, {"torch", "float8_e4m3fn"}, {"torch", "float8_e5m2"},
    {"collections", "OrderedDict"}, {"builtins", "set"}, {"builtins", "frozenset"}, {"builtins", "dict"},
    {"builtins", "list"}, {"builtins", "tuple"}, {"builtins", "bytearray"}, {"builtins", "bytes"},
    {"builtins", "int"}, {"builtins", "float"}, {"builtins", "complex"}, {"builtins", "slice"},
    {"builtins", "range"}, {"_codecs", "encode"}, {"copyreg", "_reconstructor"}, {"builtins", "object"},
};

// Modules any of whose names is a code-execution (or file/network/process) entry point.
constexpr const char* kCriticalModules[] = {
    "os", "posix", "nt", "subprocess", "sys", "runpy", "importlib", "shutil", "socket", "pty", "code", "codeop",
    "commands", "ctypes", "marshal", "pickle", "_pickle", "cPickle", "dill", "types", "multiprocessing", "webbrowser",
    "asyncio", "pdb", "bdb", "timeit", "cProfile", "profile", "trace", "imp", "pip", "setuptools", "distutils",
    "http", "urllib", "requests", "ftplib", "telnetlib", "smtplib", "tempfile", "glob", "pathlib", "io", "_io",
    "zipimport", "torch.hub", "torch.jit", "torch.package", "torch.serialization", "numpy.testing", "platform"};
// Single names that execute code or reach attributes.
constexpr const char* kCriticalNames[][2] = {
    {"builtins", "eval"}, {"builtins", "exec"}, {"builtins", "compile"}, {"builtins", "open"},
    {"builtins", "getattr"}, {"builtins", "setattr"}, {"builtins", "delattr"}, {"builtins", "__import__"},
    {"builtins", "globals"}, {"builtins", "locals"}, {"builtins", "vars"}, {"builtins", "input"},
    {"builtins", "breakpoint"}, {"builtins", "apply"}, {"builtins", "execfile"}, {"builtins", "file"},
    {"builtins", "reload"}, {"builtins", "help"}, {"builtins", "memoryview"}, {"builtins", "type"},
    {"operator", "attrgetter"}, {"operator", "methodcaller"}, {"operator", "itemgetter"}, {"functools", "partial"},
    {"functools", "reduce"}, {"copyreg", "_reconstructor_ex"}, {"numpy", "load"}, {"torch", "load"},
    {"torch._C", "_jit_pass_lower_all_tuples"}};

std::string normalize_module(std::string_view module) {
  // Python 2 names that pickle's compatibility table maps to Python 3 modules.
  if (module == "__builtin__") return "builtins";
  if (module == "copy_reg") return "copyreg";
  if (module == "exceptions") return "builtins";
  return std::string(module);
}

bool module_under(std::string_view module, std::string_view root) {
  return module == root || (module.size() > root.size() && module.substr(0, root.size()) == root && module[root.size()] == '.');
}

// The symbolic stack holds what the scanner can know about a value.
struct Value {
  enum Kind { UNKNOWN, MARK, STRING, GLOBAL } kind = UNKNOWN;
  std::string text;          // STRING: the constant
  std::string module, name;  // GLOBAL
  bool resolved = true;      // GLOBAL from STACK_GLOBAL with operands the scanner could not read
};

constexpr size_t kMaxStack = 1u << 20;
constexpr size_t kMaxFindingsPerStream = 256;

class PickleWalker {
 public:
  PickleWalker(const uint8_t* data, size_t n, const std::string& name, PickleScan* out)
      : p_(data), n_(n), name_(name), out_(out) {}

  void run() {
    size_t streams = 0;
    while (pos_ < n_) {
      if (streams > 0) {
        // Legacy torch.save: several pickles, then raw storage bytes. Another PROTO starts a pickle.
        if (p_[pos_] != 0x80) {
          add(Severity::INFO, "pickle.trailing_bytes", pos_,
              std::to_string(n_ - pos_) + " bytes after the last pickle (not walked; legacy torch storages)");
          return;
        }
      }
      ++streams;
      stack_.clear();
      memo_.clear();
      if (!walk_one()) return;
    }
    if (streams == 0) add(Severity::MEDIUM, "pickle.malformed", 0, "empty pickle stream");
  }

 private:
  const uint8_t* p_;
  size_t n_;
  std::string name_;
  PickleScan* out_;
  size_t pos_ = 0;
  std::vector<Value> stack_;
  std::unordered_map<uint64_t, Value> memo_;
  size_t findings_ = 0;

  void add(Severity s, std::string rule, uint64_t offset, std::string message) {
    if (findings_++ >= kMaxFindingsPerStream) return;
    out_->findings.push_back({s, std::move(rule), name_, offset, std::move(message)});
  }
  bool malformed(uint64_t offset, const std::string& what) {
    add(Severity::MEDIUM, "pickle.malformed", offset, what + " (a loader would fail here; the walk stops)");
    return false;
  }
  bool need(size_t k, uint64_t at, const char* what) {
    if (k > n_ - pos_) return malformed(at, std::string("truncated ") + what);
    return true;
  }
  uint64_t read_le(size_t k) {
    uint64_t v = 0;
    for (size_t i = 0; i < k; ++i) v |= uint64_t(p_[pos_ + i]) << (8 * i);
    pos_ += k;
    return v;
  }
  std::optional<std::string> read_line() {
    const void* nl = std::memchr(p_ + pos_, '\n', n_ - pos_);
    if (!nl) return std::nullopt;
    size_t end = static_cast<const uint8_t*>(nl) - p_;
    std::string s(reinterpret_cast<const char*>(p_ + pos_), end - pos_);
    pos_ = end + 1;
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return s;
  }
  bool push(Value v, uint64_t at) {
    if (stack_.size() >= kMaxStack) return malformed(at, "stack deeper than " + std::to_string(kMaxStack));
    stack_.push_back(std::move(v));
    return true;
  }
  bool pop(Value* v, uint64_t at) {
    if (stack_.empty()) return malformed(at, "stack underflow");
    if (v) *v = std::move(stack_.back());
    stack_.pop_back();
    return true;
  }
  bool pop_n(size_t k, uint64_t at) {
    for (size_t i = 0; i < k; ++i)
      if (!pop(nullptr, at)) return false;
    return true;
  }
  // Pops down to and including the topmost MARK; returns the values above it (bottom first).
  bool pop_mark(std::vector<Value>* items, uint64_t at) {
    size_t k = stack_.size();
    while (k > 0 && stack_[k - 1].kind != Value::MARK) --k;
    if (k == 0) return malformed(at, "no MARK on the stack");
    if (items) items->assign(std::make_move_iterator(stack_.begin() + k), std::make_move_iterator(stack_.end()));
    stack_.resize(k - 1);
    return true;
  }
  static Value unknown() { return Value{}; }
  static Value string_value(std::string s) {
    Value v;
    v.kind = Value::STRING;
    v.text = std::move(s);
    return v;
  }

  void record_import(const std::string& module_raw, const std::string& name, const char* opcode, uint64_t at,
                     bool resolved) {
    const std::string module = normalize_module(module_raw);
    out_->imports.push_back({module, name, opcode, at});
    if (!resolved) {
      add(Severity::CRITICAL, "pickle.import.unresolved", at,
          std::string(opcode) + " with operands that are not string constants: the import cannot be known statically");
      return;
    }
    const Severity s = classify_pickle_import(module, name);
    const char* rule = s == Severity::CRITICAL ? "pickle.import.code_execution"
                       : s == Severity::INFO   ? "pickle.import.allowed"
                                               : "pickle.import.not_allowed";
    add(s, rule, at, std::string(opcode) + " imports " + module + "." + name);
  }
  void record_call(const Value& callable, const char* opcode, uint64_t at) {
    if (callable.kind == Value::GLOBAL) {
      const Severity s = callable.resolved ? classify_pickle_import(callable.module, callable.name) : Severity::CRITICAL;
      if (s >= Severity::HIGH)
        add(s, "pickle.call", at, std::string(opcode) + " calls " + callable.module + "." + callable.name);
    } else if (callable.kind == Value::STRING || callable.kind == Value::MARK) {
      add(Severity::MEDIUM, "pickle.malformed", at, std::string(opcode) + " on a value that is not callable");
    }
  }

  static std::string decode_raw_unicode_escape(const std::string& s, bool* ok) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
        size_t digits = s[i + 1] == 'u' ? 4 : 8;
        if (i + 2 + digits > s.size()) { *ok = false; return s; }
        uint32_t cp = 0;
        for (size_t k = 0; k < digits; ++k) {
          char c = s[i + 2 + k];
          int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
          if (d < 0) { *ok = false; return s; }
          cp = cp * 16 + d;
        }
        if (cp < 0x80) out += static_cast<char>(cp);
        else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 63)); }
        else if (cp < 0x10000) { out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 63)); out += char(0x80 | (cp & 63)); }
        else { out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 63)); out += char(0x80 | ((cp >> 6) & 63)); out += char(0x80 | (cp & 63)); }
        i += 1 + digits;
      } else {
        out += s[i];
      }
    }
    return out;
  }
  // Protocol 0 STRING: a Python repr in quotes.
  static std::string decode_string_repr(const std::string& s, bool* ok) {
    if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front()) { *ok = false; return s; }
    std::string body = s.substr(1, s.size() - 2), out;
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] != '\\' || i + 1 == body.size()) { out += body[i]; continue; }
      char c = body[++i];
      switch (c) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': case '\'': case '"': out += c; break;
        case 'x':
          if (i + 2 < body.size() + 0 && std::isxdigit(uint8_t(body[i + 1])) && std::isxdigit(uint8_t(body[i + 2]))) {
            out += static_cast<char>(std::stoi(body.substr(i + 1, 2), nullptr, 16));
            i += 2;
          } else { *ok = false; }
          break;
        default:
          if (c >= '0' && c <= '7') {
            int v = c - '0', k = 0;
            while (k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7') { v = v * 8 + (body[++i] - '0'); ++k; }
            out += static_cast<char>(v & 0xFF);
          } else { out += '\\'; out += c; }
      }
    }
    return out;
  }

  bool string_op(size_t len_bytes, uint64_t at, const char* what, bool text) {
    if (!need(len_bytes, at, what)) return false;
    uint64_t len = read_le(len_bytes);
    if (len > n_ - pos_) return malformed(at, std::string(what) + " length " + std::to_string(len) + " past the end");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return push(text ? string_value(std::move(s)) : unknown(), at);
  }

  bool walk_one() {
    for (;;) {
      if (pos_ >= n_) return malformed(pos_, "stream ends without STOP");
      const uint64_t at = pos_;
      const uint8_t op = p_[pos_++];
      ++out_->opcodes;
      switch (op) {
        case '(': {                                                                         // MARK
          Value mark;
          mark.kind = Value::MARK;
          if (!push(mark, at)) return false;
          break;
        }
        case '.': return true;                                                              // STOP
        case '0': if (!pop(nullptr, at)) return false; break;                               // POP
        case '1': if (!pop_mark(nullptr, at)) return false; break;                          // POP_MARK
        case '2': {                                                                         // DUP
          if (stack_.empty()) return malformed(at, "DUP on an empty stack");
          Value top = stack_.back();
          if (!push(top, at)) return false;
          break;
        }
        case 'F': case 'I': case 'L': {                                                    // FLOAT INT LONG
          if (!read_line()) return malformed(at, "unterminated number line");
          if (!push(unknown(), at)) return false;
          break;
        }
        case 'J': if (!need(4, at, "BININT")) return false; pos_ += 4; if (!push(unknown(), at)) return false; break;
        case 'K': if (!need(1, at, "BININT1")) return false; pos_ += 1; if (!push(unknown(), at)) return false; break;
        case 'M': if (!need(2, at, "BININT2")) return false; pos_ += 2; if (!push(unknown(), at)) return false; break;
        case 'G': if (!need(8, at, "BINFLOAT")) return false; pos_ += 8; if (!push(unknown(), at)) return false; break;
        case 'N': case 0x88: case 0x89: {                                                  // NONE NEWTRUE NEWFALSE
          if (!push(unknown(), at)) return false;
          break;
        }
        case 'P': {                                                                         // PERSID
          if (!read_line()) return malformed(at, "unterminated PERSID line");
          if (!push(unknown(), at)) return false;
          break;
        }
        case 'Q': { Value v; if (!pop(&v, at) || !push(unknown(), at)) return false; break; }  // BINPERSID
        case 'R': {                                                                         // REDUCE
          Value args, callable;
          if (!pop(&args, at) || !pop(&callable, at)) return false;
          record_call(callable, "REDUCE", at);
          if (!push(unknown(), at)) return false;
          break;
        }
        case 'S': {                                                                         // STRING
          auto line = read_line();
          if (!line) return malformed(at, "unterminated STRING line");
          bool ok = true;
          std::string s = decode_string_repr(*line, &ok);
          if (!push(ok ? string_value(s) : unknown(), at)) return false;
          break;
        }
        case 'V': {                                                                         // UNICODE
          auto line = read_line();
          if (!line) return malformed(at, "unterminated UNICODE line");
          bool ok = true;
          std::string s = decode_raw_unicode_escape(*line, &ok);
          if (!push(ok ? string_value(s) : unknown(), at)) return false;
          break;
        }
        case 'T': if (!string_op(4, at, "BINSTRING", true)) return false; break;
        case 'U': if (!string_op(1, at, "SHORT_BINSTRING", true)) return false; break;
        case 'X': if (!string_op(4, at, "BINUNICODE", true)) return false; break;
        case 0x8c: if (!string_op(1, at, "SHORT_BINUNICODE", true)) return false; break;
        case 0x8d: if (!string_op(8, at, "BINUNICODE8", true)) return false; break;
        case 'B': if (!string_op(4, at, "BINBYTES", false)) return false; break;
        case 'C': if (!string_op(1, at, "SHORT_BINBYTES", false)) return false; break;
        case 0x8e: if (!string_op(8, at, "BINBYTES8", false)) return false; break;
        case 0x96: if (!string_op(8, at, "BYTEARRAY8", false)) return false; break;
        case 0x8a: if (!string_op(1, at, "LONG1", false)) return false; break;
        case 0x8b: if (!string_op(4, at, "LONG4", false)) return false; break;
        case 'a': if (!pop_n(1, at)) return false; break;                                   // APPEND
        case 'b': if (!pop_n(1, at)) return false; break;                                   // BUILD
        case 'c': case 'i': {                                                               // GLOBAL INST
          auto module = read_line();
          auto name = module ? read_line() : std::nullopt;
          if (!module || !name) return malformed(at, op == 'c' ? "unterminated GLOBAL" : "unterminated INST");
          record_import(*module, *name, op == 'c' ? "GLOBAL" : "INST", at, true);
          if (op == 'c') {
            Value g;
            g.kind = Value::GLOBAL;
            g.module = normalize_module(*module);
            g.name = *name;
            if (!push(g, at)) return false;
          } else {
            if (!pop_mark(nullptr, at)) return false;
            Value g;
            g.kind = Value::GLOBAL;
            g.module = normalize_module(*module);
            g.name = *name;
            record_call(g, "INST", at);
            if (!push(unknown(), at)) return false;
          }
          break;
        }
        case 'd': case 'l': case 't': case 0x91: {                                          // DICT LIST TUPLE FROZENSET
          if (!pop_mark(nullptr, at) || !push(unknown(), at)) return false;
          break;
        }
        case '}': case ']': case ')': case 0x8f: if (!push(unknown(), at)) return false; break;  // EMPTY_*
        case 'e': case 'u': case 0x90: if (!pop_mark(nullptr, at)) return false; break;     // APPENDS SETITEMS ADDITEMS
        case 's': if (!pop_n(2, at)) return false; break;                                   // SETITEM
        case 0x85: if (!pop_n(1, at) || !push(unknown(), at)) return false; break;          // TUPLE1
        case 0x86: if (!pop_n(2, at) || !push(unknown(), at)) return false; break;          // TUPLE2
        case 0x87: if (!pop_n(3, at) || !push(unknown(), at)) return false; break;          // TUPLE3
        case 'o': {                                                                         // OBJ
          std::vector<Value> items;
          if (!pop_mark(&items, at)) return false;
          if (items.empty()) return malformed(at, "OBJ without a class");
          record_call(items.front(), "OBJ", at);
          if (!push(unknown(), at)) return false;
          break;
        }
        case 0x81: {                                                                        // NEWOBJ
          Value args, cls;
          if (!pop(&args, at) || !pop(&cls, at)) return false;
          record_call(cls, "NEWOBJ", at);
          if (!push(unknown(), at)) return false;
          break;
        }
        case 0x92: {                                                                        // NEWOBJ_EX
          Value kwargs, args, cls;
          if (!pop(&kwargs, at) || !pop(&args, at) || !pop(&cls, at)) return false;
          record_call(cls, "NEWOBJ_EX", at);
          if (!push(unknown(), at)) return false;
          break;
        }
        case 0x93: {                                                                        // STACK_GLOBAL
          Value name, module;
          if (!pop(&name, at) || !pop(&module, at)) return false;
          Value g;
          g.kind = Value::GLOBAL;
          g.resolved = name.kind == Value::STRING && module.kind == Value::STRING;
          g.module = g.resolved ? normalize_module(module.text) : "?";
          g.name = g.resolved ? name.text : "?";
          record_import(g.module, g.name, "STACK_GLOBAL", at, g.resolved);
          if (!push(g, at)) return false;
          break;
        }
        case 0x82: case 0x83: case 0x84: {                                                 // EXT1 EXT2 EXT4
          size_t k = op == 0x82 ? 1 : op == 0x83 ? 2 : 4;
          if (!need(k, at, "EXT")) return false;
          uint64_t code = read_le(k);
          add(Severity::CRITICAL, "pickle.import.extension", at,
              "EXT" + std::to_string(k) + " code " + std::to_string(code) +
                  ": an import through copyreg's extension registry, which the scanner cannot resolve");
          Value g;
          g.kind = Value::GLOBAL;
          g.resolved = false;
          g.module = g.name = "?";
          if (!push(g, at)) return false;
          break;
        }
        case 'p': {                                                                         // PUT
          auto line = read_line();
          if (!line) return malformed(at, "unterminated PUT line");
          if (stack_.empty()) return malformed(at, "PUT on an empty stack");
          char* end = nullptr;
          uint64_t idx = std::strtoull(line->c_str(), &end, 10);
          if (line->empty() || *end) return malformed(at, "PUT index is not a number");
          memo_[idx] = stack_.back();
          break;
        }
        case 'q': case 'r': {                                                               // BINPUT LONG_BINPUT
          size_t k = op == 'q' ? 1 : 4;
          if (!need(k, at, "BINPUT")) return false;
          uint64_t idx = read_le(k);
          if (stack_.empty()) return malformed(at, "BINPUT on an empty stack");
          memo_[idx] = stack_.back();
          break;
        }
        case 0x94: {                                                                        // MEMOIZE
          if (stack_.empty()) return malformed(at, "MEMOIZE on an empty stack");
          memo_[memo_.size()] = stack_.back();
          break;
        }
        case 'g': case 'h': case 'j': {                                                     // GET BINGET LONG_BINGET
          uint64_t idx = 0;
          if (op == 'g') {
            auto line = read_line();
            if (!line) return malformed(at, "unterminated GET line");
            char* end = nullptr;
            idx = std::strtoull(line->c_str(), &end, 10);
            if (line->empty() || *end) return malformed(at, "GET index is not a number");
          } else {
            size_t k = op == 'h' ? 1 : 4;
            if (!need(k, at, "BINGET")) return false;
            idx = read_le(k);
          }
          auto it = memo_.find(idx);
          if (it == memo_.end()) return malformed(at, "GET of memo index " + std::to_string(idx) + " never PUT");
          if (!push(it->second, at)) return false;
          break;
        }
        case 0x80: {                                                                        // PROTO
          if (!need(1, at, "PROTO")) return false;
          int proto = p_[pos_++];
          if (proto > 5) add(Severity::MEDIUM, "pickle.protocol", at, "protocol " + std::to_string(proto) + " is newer than 5");
          if (out_->protocol < 0) out_->protocol = proto;
          break;
        }
        case 0x95: {                                                                        // FRAME
          if (!need(8, at, "FRAME")) return false;
          uint64_t len = read_le(8);
          if (len > n_ - pos_) return malformed(at, "FRAME of " + std::to_string(len) + " bytes past the end");
          break;
        }
        case 0x97: if (!push(unknown(), at)) return false; break;                           // NEXT_BUFFER
        case 0x98: if (stack_.empty()) return malformed(at, "READONLY_BUFFER on an empty stack"); break;
        default: {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "0x%02x", op);
          return malformed(at, std::string("unknown opcode ") + hex);
        }
      }
    }
  }
};

}  // namespace

Severity classify_pickle_import(std::string_view module_raw, std::string_view name) {
  const std::string module = normalize_module(module_raw);
  for (const auto& row : kCriticalNames)
    if (module == row[0] && name == row[1]) return Severity::CRITICAL;
  for (const char* m : kCriticalModules)
    if (module_under(module, m)) return Severity::CRITICAL;
  // Attribute chains (protocol 4 allows "a.b" names) through dunders reach anything.
  if (name.find("__") != std::string_view::npos && name != "__main__") return Severity::CRITICAL;
  for (const auto& row : kAllowed)
    if (module == row[0] && name == row[1]) return Severity::INFO;
  // Module classes saved by torch.save(model): loading imports torch's own code but runs no
  // attacker-chosen function; still not a weights-only file.
  if (module_under(module, "torch.nn") || module_under(module, "torch.ao.nn")) return Severity::MEDIUM;
  if ((module == "numpy.core.multiarray" || module == "numpy._core.multiarray") &&
      (name == "_reconstruct" || name == "scalar"))
    return Severity::LOW;
  if (module == "numpy" && (name == "ndarray" || name == "dtype")) return Severity::LOW;
  return Severity::HIGH;
}

PickleScan scan_pickle_bytes(const uint8_t* data, size_t n, const std::string& name) {
  PickleScan out;
  PickleWalker(data, n, name, &out).run();
  return out;
}

}  // namespace ss
