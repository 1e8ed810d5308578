// Loading certificates and keys, or making a throw-away one, into one SSL_CTX.
#include "tls/tls_context.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <fmt/core.h>
#include <fstream>
#include <system_error>

namespace startup_server::detail {
namespace {

// A file that cannot even be opened says so in the system's words, not OpenSSL's.
bool readable(const std::string& file, const char* what, std::string& problem) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    problem = fmt::format("unable to read the TLS {} '{}': {}", what, file, std::strerror(errno));
    return false;
  }
  ::close(fd);
  return true;
}

// True when a PEM file holds an encrypted private key (PKCS#8's or the traditional header):
// the server never asks for a pass phrase, so the reason to give is that one.
bool encrypted_key(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  for (int n = 0; n < 64 && std::getline(in, line); ++n)
    if (line.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") || line.starts_with("Proc-Type: 4,ENCRYPTED"))
      return true;
  return false;
}

std::string fingerprint_of(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!cert || X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += fmt::format("{}{:02X}", i ? ":" : "", md[i]);
  return out;
}

// EC P-256, self-signed, for the names a loopback client uses.
bool make_self_signed(SSL_CTX* ctx, std::string& problem) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  bool ok = key && cert;
  if (ok) {
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;  // positive
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    X509_set_version(cert, 2);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 30L * 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("startup-server"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    ok = san && X509_add_ext(cert, san, -1) == 1;
    X509_EXTENSION_free(san);
    ok = ok && X509_sign(cert, key, EVP_sha256()) > 0 && SSL_CTX_use_certificate(ctx, cert) == 1 &&
         SSL_CTX_use_PrivateKey(ctx, key) == 1;
  }
  if (!ok) problem = "unable to make a self-signed TLS certificate: " + openssl_reason();
  X509_free(cert);
  EVP_PKEY_free(key);
  return ok;
}

bool load_files(SSL_CTX* ctx, const tls_options& o, std::string& problem) {
  if (!readable(o.certificate_file, "certificate", problem) || !readable(o.key_file, "key", problem)) return false;
  if (SSL_CTX_use_certificate_chain_file(ctx, o.certificate_file.c_str()) != 1) {
    problem = fmt::format("unable to load the TLS certificate '{}': {}", o.certificate_file, openssl_reason());
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    const std::string reason = openssl_reason();
    problem = encrypted_key(o.key_file)
                  ? fmt::format("unable to load the TLS key '{}': it is encrypted, and no pass phrase is asked for "
                                "(openssl pkey -in {} -out KEY gives it unencrypted)",
                                o.key_file, o.key_file)
                  : fmt::format("unable to load the TLS key '{}': {}", o.key_file, reason);
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    problem = fmt::format("the TLS key '{}' does not match the certificate '{}': {}", o.key_file,
                          o.certificate_file, openssl_reason());
    return false;
  }
  return true;
}

bool load_client_ca(SSL_CTX* ctx, const std::string& file, std::string& problem) {
  if (!readable(file, "client CA", problem)) return false;
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(file.c_str());
  if (!names || SSL_CTX_load_verify_locations(ctx, file.c_str(), nullptr) != 1) {
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    problem = fmt::format("unable to load the TLS client CA '{}': {}", file, openssl_reason("no certificate in it"));
    return false;
  }
  SSL_CTX_set_client_CA_list(ctx, names);  // told to clients, so they pick the right certificate
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  // A resumed session keeps its verified client; OpenSSL refuses resumption without this.
  static const unsigned char id[] = "startup-server";
  SSL_CTX_set_session_id_context(ctx, id, sizeof id - 1);
  return true;
}

}  // namespace

std::string openssl_reason(const char* fallback) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return fallback;
  const char* reason = ERR_reason_error_string(e);
  const char* lib = ERR_lib_error_string(e);
  if (!reason) return fallback;
  return lib ? fmt::format("{} ({})", reason, lib) : std::string(reason);
}

std::unique_ptr<tls_context> tls_context::make(const tls_options& o, std::string& problem) {
  ERR_clear_error();
  std::unique_ptr<tls_context> t(new tls_context);
  t->handshake_timeout_ = o.handshake_timeout;
  t->ctx_ = SSL_CTX_new(TLS_server_method());
  if (!t->ctx_) {
    problem = "unable to set up TLS: " + openssl_reason();
    return nullptr;
  }
  SSL_CTX* ctx = t->ctx_;
  // An encrypted key fails with a reason instead of asking for a pass phrase on the terminal.
  SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Partial writes: a large write goes out record by record as the socket takes it; idle
  // connections give their buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  const bool own = !o.certificate_file.empty() || !o.key_file.empty();
  if (own && (o.certificate_file.empty() || o.key_file.empty())) {
    problem = o.certificate_file.empty() ? "a TLS key needs its certificate" : "a TLS certificate needs its key";
    return nullptr;
  }
  if (own ? !load_files(ctx, o, problem) : !make_self_signed(ctx, problem)) return nullptr;
  t->self_signed_ = !own;
  if (!o.client_ca_file.empty() && !load_client_ca(ctx, o.client_ca_file, problem)) return nullptr;
  t->fingerprint_ = fingerprint_of(SSL_CTX_get0_certificate(ctx));
  return t;
}

tls_context::~tls_context() { SSL_CTX_free(ctx_); }

}  // namespace startup_server::detail
