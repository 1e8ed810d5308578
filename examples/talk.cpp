// The seed's talk example against the library: make-stream-and-talk serves, talking-to-myself asks.
//
//   (defun make-stream-and-talk (handle) ...)      -> make_stream_and_talk below
//   (comm:start-up-server :function 'make-stream-and-talk :service *talk-port*)
//   (defun talking-to-myself () ...)                -> talking_to_myself below
//
// Usage: talk [PORT]   (default 0: the system picks a free port). Prints the conversation
// as the seed's (talking-to-myself) does, then stops the server; exits 0 if every reply was right.
#include <startup_server/startup_server.hpp>

#include <iostream>
#include <string>

namespace {

using namespace startup_server;

// The seed's talk-on-stream: for each line read, write it back with a message. The server
// runs this on a thread of its own per connection, so it may block on its stream.
void make_stream_and_talk(server&, tcp_stream& stream) {
  while (auto line = stream.read_line()) stream.write_line("You sent: '" + *line + "'");
}

// The seed's talking-to-myself: a client that says three things and prints the replies.
bool talking_to_myself(std::uint16_t talk_port) {
  tcp_stream talk = open_tcp_stream("localhost", std::to_string(talk_port));
  talk.set_timeout(std::chrono::seconds(5));
  bool all_right = true;
  for (std::string monolog : {"Hello self.", "Why don't you say something original?", "Talk to you later then. Bye."}) {
    talk.write_line(monolog);
    std::cout << "I said: \"" << monolog << "\"\n";
    const auto reply = talk.read_line();
    std::cout << "Self replied: \"" << reply.value_or("") << "\"\n";
    all_right = all_right && reply == "You sent: '" + monolog + "'";
  }
  return all_right;
}

}  // namespace

int main(int argc, char** argv) {
  server_options options;
  options.function = handler::user;
  options.serve = make_stream_and_talk;
  options.service = argc > 1 ? argv[1] : "0";
  options.local_address = "localhost";
  options.wait = true;  // return once listening (or throw std::system_error)
  try {
    auto s = start_up_server(options);
    const bool ok = talking_to_myself(s->local_port());
    server_terminate(*s);
    s->join();
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "talk: " << e.what() << '\n';
    return 2;
  }
}
