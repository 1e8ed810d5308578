// The one translation unit that compiles Asio (ASIO_SEPARATE_COMPILATION keeps builds fast).
#include <asio/impl/src.hpp>
