// The ruleset the current network namespace holds, read in-process through
// libnftables (the library `nft` itself uses): no subprocess, no text scraping.
#include <nftables/libnftables.h>

#include <memory>

#include "translator/frontend/nft/nft.h"

namespace nf2bpf::frontend {

namespace {

// `list ruleset` through libnftables, as JSON or as text with rule handles.
Result<std::string> list_ruleset(bool json) {
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> ctx(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!ctx) return Error{ENOMEM, "read the kernel ruleset: nft_ctx_new"};
  nft_ctx_output_set_flags(ctx.get(), json ? NFT_CTX_OUTPUT_JSON : NFT_CTX_OUTPUT_HANDLE);
  if (nft_ctx_buffer_output(ctx.get()) != 0 || nft_ctx_buffer_error(ctx.get()) != 0)
    return Error{ENOMEM, "read the kernel ruleset: buffering libnftables output"};
  int rc = nft_run_cmd_from_buffer(ctx.get(), "list ruleset");
  // Each get_*_buffer call hands the buffer over and rewinds it: call once.
  const char* ob = nft_ctx_get_output_buffer(ctx.get());
  std::string out = ob ? ob : "";
  if (rc != 0) {
    const char* eb = nft_ctx_get_error_buffer(ctx.get());
    std::string err = eb ? eb : "";
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    int code = err.find("Operation not permitted") != std::string::npos ? EPERM : 0;
    return Error{code, "read the kernel ruleset (libnftables: list ruleset)" + (err.empty() || code ? "" : ": " + err)};
  }
  return out;
}

}  // namespace

Result<ir::Ruleset> read_kernel_ruleset(diag::Diagnostics& diags) {
  auto js = list_ruleset(true);
  if (!js) return js.error();
  // iptables-nft rules carry xt matches whose options the JSON output leaves
  // out; the text listing translates them. Pair the two by rule handle.
  std::map<NftRuleKey, nft::RuleAst> subs;
  if (js->find("\"xt\"") != std::string::npos) {
    auto text = list_ruleset(false);
    if (text) {
      NftTextOptions topt;
      topt.on_rule = [&](ir::Family f, const std::string& t, const std::string& c, const nft::RuleAst& r) {
        if (r.handle) subs[{f, t, c, *r.handle}] = r;
      };
      diag::Diagnostics scratch;  // problems are reported on the JSON side
      parse_nft_text({"kernel", std::move(*text)}, scratch, topt);
    }
  }
  NftJsonOptions jopt;
  jopt.frontend = ir::Frontend::Kernel;
  jopt.substitutes = &subs;
  ir::Ruleset rs = parse_nft_json({"kernel", std::move(*js)}, diags, jopt);
  rs.source = "kernel";
  return rs;
}

}  // namespace nf2bpf::frontend
