// A program built against an installed startup_server: an echo server on 127.0.0.1, a client of
// its own, one line there and back. Exits 0 if the line came back unchanged.
#include <startup_server/startup_server.hpp>

#include <chrono>
#include <exception>
#include <iostream>
#include <string>

int main() {
  startup_server::server_options options;
  options.function = startup_server::handler::echo;
  options.local_address = "127.0.0.1";
  options.service = "0";  // the system picks a free port
  options.wait = true;    // return once listening (or throw std::system_error)
  try {
    auto server = startup_server::start_up_server(options);
    auto stream = startup_server::open_tcp_stream("127.0.0.1", std::to_string(server->local_port()));
    stream.set_timeout(std::chrono::seconds(5));
    const std::string line = "one line there and back";
    stream.write_line(line);
    const auto reply = stream.read_line();
    stream.close();
    startup_server::server_terminate(*server);
    server->join();
    if (reply != line) {
      std::cerr << "consumer: sent '" << line << "', got '" << reply.value_or("(end of stream)") << "'\n";
      return 1;
    }
    std::cout << "consumer: echoed '" << *reply << "'\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "consumer: " << e.what() << '\n';
    return 2;
  }
}
