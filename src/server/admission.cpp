// Running the admission chain.
#include "server/admission.hpp"

namespace startup_server::detail {

asio::awaitable<admission_verdict> run_admission(const admission_chain& chain, connection& c) {
  for (const auto& step : chain) {
    admission_verdict v = co_await step->admit(c);
    if (!v.admitted) co_return v;
  }
  co_return admission_verdict{};
}

}  // namespace startup_server::detail
