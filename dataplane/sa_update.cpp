#include <dataplane/sa_update.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace ptpsec {

namespace {

using sa_wire::op;

/// A copy of an SA that the new version may change; its keys stay shared.
std::shared_ptr<security_association> copy_of(const security_association& sa) {
    return std::make_shared<security_association>(sa);
}

/// The database with every SA shared: the starting point of a new version.
std::unique_ptr<sa_database> next_version(const sa_database& current) {
    auto next = std::make_unique<sa_database>();
    for (unsigned spp = 0; spp < 256; ++spp) {
        next->put(static_cast<uint8_t>(spp), current.shared(static_cast<uint8_t>(spp)));
    }
    return next;
}

/// Names the key an update is about, for a key-expansion error.
std::string where(const sa_wire::update& u) {
    return fmt::format("key {} of spp {}", u.key_id, u.spp);
}

result<update_result> add_key(const sa_database& current, const sa_wire::update& u, icv::engine& eng) {
    if (u.algorithm >= icv::algorithm_count) {
        return error{fmt::format("algorithm {} is not one of 0-{}", u.algorithm, icv::algorithm_count - 1)};
    }
    const auto alg = static_cast<icv::algorithm>(u.algorithm);
    if (u.key_len == 0 || u.key_len > sa_wire::max_key_len) {
        return error{fmt::format("key_len {} is not 1-{}", u.key_len, sa_wire::max_key_len)};
    }
    if (u.seqid_window == 0) {
        return error{"seqid_window 0"};
    }
    if (u.allow_mutable > 1) {
        return error{fmt::format("allow_mutable {} is not 0 or 1", u.allow_mutable)};
    }
    const security_association* sa = current.find(u.spp);
    if (sa != nullptr && sa->find_key(u.key_id) != nullptr) {
        // seeds/001 §5.3: a key ID names one key for the life of the SA.
        return error{fmt::format("key {} of spp {} is installed already; key IDs are not reused", u.key_id, u.spp)};
    }
    if (sa != nullptr && sa->allow_mutable != (u.allow_mutable != 0)) {
        return error{fmt::format("allow_mutable {} differs from spp {}'s {}; remove the SA first", u.allow_mutable,
                                 u.spp, sa->allow_mutable ? 1 : 0)};
    }
    key_config kc;
    kc.key_id = u.key_id;
    kc.alg = alg;
    kc.key = key_bytes(std::vector<uint8_t>(u.key, u.key + u.key_len));
    kc.origin = where(u);
    auto key = make_sa_key(eng, kc);
    if (!key) {
        return key.err();
    }
    std::shared_ptr<security_association> changed;
    if (sa != nullptr) {
        changed = copy_of(*sa);
    } else {
        changed = std::make_shared<security_association>();
        changed->spp = u.spp;
        changed->seqid_window = u.seqid_window;
        changed->allow_mutable = u.allow_mutable != 0;
    }
    changed->keys.push_back(std::move(key).value());
    update_result r;
    r.next = next_version(current);
    r.next->put(u.spp, std::move(changed));
    return r;
}

result<update_result> set_current(const sa_database& current, const sa_wire::update& u) {
    const security_association* sa = current.find(u.spp);
    if (sa == nullptr) {
        return error{fmt::format("no SA with spp {}", u.spp)};
    }
    if (sa->find_key(u.key_id) == nullptr) {
        return error{fmt::format("spp {} has no key {}; add it first", u.spp, u.key_id)};
    }
    auto changed = copy_of(*sa);
    changed->has_sign_key = true;
    changed->sign_key_id = u.key_id;
    update_result r;
    r.next = next_version(current);
    r.next->put(u.spp, std::move(changed));
    return r;
}

result<update_result> remove_key(const sa_database& current, const sa_wire::update& u) {
    const security_association* sa = current.find(u.spp);
    if (sa == nullptr) {
        return error{fmt::format("no SA with spp {}", u.spp)};
    }
    if (sa->find_key(u.key_id) == nullptr) {
        return error{fmt::format("spp {} has no key {}", u.spp, u.key_id)};
    }
    auto changed = copy_of(*sa);
    std::erase_if(changed->keys, [&](const auto& k) { return k->key_id == u.key_id; });
    if (changed->has_sign_key && changed->sign_key_id == u.key_id) {
        // Signing stops until the control plane names the next key: better
        // than signing with a key receivers are told to forget.
        changed->has_sign_key = false;
    }
    update_result r;
    r.next = next_version(current);
    r.next->put(u.spp, changed->keys.empty() ? nullptr : std::move(changed));
    r.retired.push_back(retired_key{u.spp, u.key_id});
    return r;
}

result<update_result> remove_sa(const sa_database& current, const sa_wire::update& u) {
    const security_association* sa = current.find(u.spp);
    if (sa == nullptr) {
        return error{fmt::format("no SA with spp {}", u.spp)};
    }
    update_result r;
    for (const auto& k : sa->keys) {
        r.retired.push_back(retired_key{u.spp, k->key_id});
    }
    r.next = next_version(current);
    r.next->put(u.spp, nullptr);
    return r;
}

update_result flush(const sa_database& current) {
    update_result r;
    for (unsigned spp = 0; spp < 256; ++spp) {
        if (const security_association* sa = current.find(static_cast<uint8_t>(spp)); sa != nullptr) {
            for (const auto& k : sa->keys) {
                r.retired.push_back(retired_key{sa->spp, k->key_id});
            }
        }
    }
    r.next = std::make_unique<sa_database>();
    return r;
}

} // namespace

std::string op_name(uint8_t operation) {
    switch (static_cast<op>(operation)) {
    case op::add_key:
        return "add_key";
    case op::set_current:
        return "set_current";
    case op::remove_key:
        return "remove_key";
    case op::remove_sa:
        return "remove_sa";
    case op::flush:
        return "flush";
    }
    return fmt::format("op {}", operation);
}

result<update_result> apply_update(const sa_database& current, const sa_wire::update& u, icv::engine& eng) {
    if (u.magic != sa_wire::update_magic) {
        return error{
            fmt::format("magic {:#010x} is not {:#010x} (another version of ptpsec?)", u.magic, sa_wire::update_magic)};
    }
    switch (static_cast<op>(u.operation)) {
    case op::add_key:
        return add_key(current, u, eng);
    case op::set_current:
        return set_current(current, u);
    case op::remove_key:
        return remove_key(current, u);
    case op::remove_sa:
        return remove_sa(current, u);
    case op::flush:
        return flush(current);
    }
    return error{fmt::format("unknown operation {}", u.operation)};
}

sa_wire::ack make_ack(const sa_wire::update& u, const status& outcome) noexcept {
    sa_wire::ack a;
    a.result = static_cast<uint8_t>(outcome ? sa_wire::status::applied : sa_wire::status::rejected);
    a.operation = u.operation;
    a.spp = u.spp;
    a.sequence = u.sequence;
    a.key_id = u.key_id;
    if (!outcome) {
        const std::string& why = outcome.err().message;
        const size_t n = std::min(why.size(), sa_wire::reason_len - 1);
        std::memcpy(a.reason, why.data(), n);
        a.reason[n] = '\0';
    }
    return a;
}

} // namespace ptpsec
