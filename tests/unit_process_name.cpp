// Unit tests: the seed's default process name, (format nil "~S server" service).
#include <catch2/catch.hpp>

#include "startup_server/server.hpp"

using startup_server::default_process_name;

TEST_CASE("process-name: a port number prints bare", "[process-name]") {
  CHECK(default_process_name("7000") == "7000 server");
}

TEST_CASE("process-name: a service name prints quoted", "[process-name]") {
  CHECK(default_process_name("http") == "\"http\" server");
}

TEST_CASE("process-name: no service or 0 prints NIL", "[process-name]") {
  CHECK(default_process_name("") == "NIL server");
  CHECK(default_process_name("0") == "NIL server");
}
