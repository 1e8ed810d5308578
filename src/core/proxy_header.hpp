// The PROXY protocol header (haproxy doc/proxy-protocol.txt, v1 text and v2 binary), parsed
// strictly and incrementally from the bytes a connection has delivered so far.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace startup_server::detail {

// A v2 TLV kept as it came: an unknown type, or an unknown SSL sub-type.
struct proxy_tlv {
  std::uint8_t type = 0;
  std::string value;
};

// The v2 SSL TLV (0x20): how the client reached the proxy.
struct proxy_ssl_info {
  static constexpr std::uint8_t client_ssl = 0x01;        // connected over TLS
  static constexpr std::uint8_t client_cert_conn = 0x02;  // sent a certificate on this connection
  static constexpr std::uint8_t client_cert_sess = 0x04;  // sent one at least once in this TLS session
  std::uint8_t client = 0;   // the bits above
  std::uint32_t verify = 0;  // 0: the client's certificate was presented and verified
  std::string version;       // 0x21, e.g. "TLSv1.3"
  std::string cn;            // 0x22, the client certificate's Common Name
  std::string cipher;        // 0x23, e.g. "TLS_AES_256_GCM_SHA384"
  std::string sig_alg;       // 0x24, e.g. "RSA-SHA256"
  std::string key_alg;       // 0x25, e.g. "RSA2048"
  std::vector<proxy_tlv> other;  // sub-TLVs of other types, in order
};

// What a complete header says.
struct proxy_header {
  int version = 0;  // 1 or 2
  // Use the connection's real endpoints: v1 UNKNOWN, v2 LOCAL, or v2 PROXY with family UNSPEC.
  // source and destination are then left empty (ss_family AF_UNSPEC).
  bool local = false;
  // v2 LOCAL only: the proxy's own connection, typically a health check (PROXY_COMMAND=LOCAL).
  bool local_command = false;
  // When !local: AF_INET or AF_INET6 with address and port (sockaddr_in / sockaddr_in6).
  sockaddr_storage source{}, destination{};
  // Bytes the header takes on the wire: consume exactly these, the rest is the client's data.
  std::size_t length = 0;

  // v2 TLVs of a PROXY header, decoded (a LOCAL header's body is skipped unread). NOOP (0x04)
  // is dropped; a CRC32C (0x03) has been verified; unknown types, in order, are in other.
  std::string alpn;       // 0x01
  std::string authority;  // 0x02, the TLS SNI or another host name the client asked for
  std::string unique_id;  // 0x05, at most 128 bytes
  std::optional<proxy_ssl_info> ssl;  // 0x20
  std::vector<proxy_tlv> other;
};

enum class proxy_parse_status {
  need_more,  // a prefix of a header that can still be valid: call again with more bytes
  complete,   // header holds the result; consume header.length bytes
  invalid,    // can never become a valid header: refuse the connection, log error
};

struct proxy_parse_result {
  proxy_parse_status status = proxy_parse_status::need_more;
  // need_more: the fewest bytes in total a valid header can still take, at least one more
  // than given and never more than the cap. A v2 header is waited for whole (16, then
  // 16 + its length); a v1 line may show itself invalid before `want` bytes arrive, so
  // calling again with any longer prefix is fine.
  std::size_t want = 0;
  proxy_header header;  // complete only
  // invalid: a short reason for the connection log, e.g. "PROXY v2: CRC32C mismatch". It
  // never quotes the peer's bytes.
  std::string error;
};

// Parses the start of a connection's byte stream as a PROXY header of either version; the
// first bytes decide which ("PROXY " or the 12-byte v2 signature). Anything that does not
// match the spec exactly is invalid, and is reported as soon as the given prefix shows it,
// rather than after more bytes or a timeout.
//
// Strictness beyond a plain reading of the spec:
// - v1: single spaces; IPv4 as four decimal numbers without leading zeros; IPv6 any form
//   inet_pton accepts (including an IPv4-mapped "::ffff:192.0.2.1", which real senders print
//   for IPv4 clients on IPv6 listeners); ports 0..65535 without leading zeros; the line,
//   CRLF included, within 107 bytes (and within max_length); UNKNOWN ignores the rest of the
//   line but still rejects a lone CR or LF.
// - v2: version 2, command LOCAL or PROXY, one of the seven defined family/transport bytes.
//   PROXY over UDP or UNIX is invalid ("unsupported transport"): this server only serves TCP,
//   and the spec lets a receiver reject what it does not support. TLVs must fill the body
//   exactly (SSL sub-TLVs likewise fill the SSL TLV); ALPN, AUTHORITY, CRC32C, UNIQUE_ID and
//   SSL may each appear once; CRC32C is 4 bytes and must match; UNIQUE_ID is at most 128 bytes.
//
// max_length caps the whole header (v2's 16 + length); values below 16 count as 16. Reads
// only bytes[0, bytes.size()), never past it. Throws nothing but std::bad_alloc.
proxy_parse_result parse_proxy_header(std::span<const unsigned char> bytes,
                                      std::size_t max_length = 4096);

// CRC32C (Castagnoli), as the v2 CRC32C TLV carries it; crc32c("123456789") is 0xE3069283.
std::uint32_t crc32c(std::span<const unsigned char> bytes) noexcept;

// The address part of a header's source or destination as the TCPREMOTEIP-style variables
// want it: "203.0.113.7", "2001:db8::1" (no brackets), an IPv4-mapped IPv6 address as plain
// IPv4 (as for real peers); "" for anything but AF_INET/AF_INET6. Ports: port_of in resolve.hpp.
std::string proxy_address_text(const sockaddr_storage& address);

}  // namespace startup_server::detail
