// Running the admission chain.
#include "server/admission.hpp"

namespace startup_server::detail {

asio::awaitable<admission_verdict> run_admission(const admission_chain& chain, connection& c) {
  for (std::size_t i = 0; i < chain.size(); ++i) {
    admission_verdict v = co_await chain[i]->admit(c);
    if (v.admitted) continue;
    for (std::size_t j = 0; j < i; ++j) chain[j]->release(c);
    co_return v;
  }
  co_return admission_verdict{};
}

void release_admission(const admission_chain& chain, connection& c) noexcept {
  for (const auto& step : chain) step->release(c);
}

}  // namespace startup_server::detail
