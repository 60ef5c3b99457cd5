// TSan annotations for Debian's uninstrumented absl synchronization.
//
// libabsl_synchronization.so from Debian is built without -fsanitize=thread,
// so absl::Mutex, CondVar and Notification do their locking in code TSan does
// not see: every access guarded by an absl::Mutex in OUR code would be reported
// as a race. Upstream absl annotates these functions itself when it is built
// with TSan (ABSL_TSAN_MUTEX_* in mutex.cc); this file adds the same
// annotations from outside. Each function below is defined again here, linked
// into the executable (see BUILD.bazel), so it interposes on the library's
// definition for every caller, our code and libgrpc's alike; it tells TSan what
// the real function does and calls it (found with dlsym(RTLD_NEXT)).
//
// Linked only into --config=tsan binaries (--custom_malloc in .bazelrc). Note
// that config compiles with -U__SANITIZE_THREAD__ (see .bazelrc), so absl's
// headers do not annotate Mutex's constructor: TSan creates each mutex on its
// first annotated lock.

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#if !ABSL_OPTION_USE_INLINE_NAMESPACE
#error \
    "the mangled names below assume absl's inline namespace (Debian: debian3)"
#endif
#define DEVMEM_STR2(x) #x
#define DEVMEM_STR(x) DEVMEM_STR2(x)

namespace {

// The library's definition of the function whose mangled name is `mangled`,
// written with absl's inline namespace as "@" (e.g. "_ZN4absl@5Mutex4LockEv").
template <typename Fn>
Fn Real(const char* mangled) {
  const std::string ns = DEVMEM_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  std::string name(mangled);
  const size_t at = name.find('@');
  name.replace(at, 1, std::to_string(ns.size()) + ns);
  void* fn = ::dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_tsan_annotations: %s not found: %s\n",
                 name.c_str(), ::dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

// Calls the library's function `mangled` of type `Fn` with `args...`.
#define REAL(Fn, mangled, ...)                  \
  ([&] {                                        \
    static const auto real = Real<Fn>(mangled); \
    return real(__VA_ARGS__);                   \
  }())

// Depth of wrapped calls on this thread. The library calls its own exported
// functions through the PLT, so our wrappers nest (AwaitWithTimeout calls
// AwaitWithDeadline, Notification::Notify calls Mutex::Lock, ...): only the
// outermost call on a thread annotates, or TSan would see one lock or unlock
// twice.
thread_local int t_depth = 0;
class Outermost {
 public:
  Outermost() : outer_(t_depth++ == 0) {}
  ~Outermost() { --t_depth; }
  explicit operator bool() const { return outer_; }

 private:
  const bool outer_;
};

// A mutex that is released while the call waits and held again on return
// (Await, CondVar::Wait): for TSan an unlock followed by a lock, so what other
// threads did under the mutex meanwhile happens before the caller goes on.
void BeforeWait(const Outermost& outer, absl::Mutex* mu) {
  if (!outer) return;
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
}
void AfterWait(const Outermost& outer, absl::Mutex* mu) {
  if (!outer) return;
  __tsan_mutex_pre_lock(mu, 0);
  __tsan_mutex_post_lock(mu, 0, 0);
}

// Await evaluates the caller's condition in the waiting thread with the mutex
// held again, which TSan cannot see (it was told "unlocked" above): the
// condition is wrapped to acquire what the mutex's last holder released first.
struct AcquiringCondition {
  const absl::Condition* cond;
  absl::Mutex* mu;
};
bool EvalAcquiring(AcquiringCondition* c) {
  __tsan_acquire(c->mu);
  return c->cond->Eval();
}

void PreLock(const Outermost& outer, void* mu, unsigned flags) {
  if (outer) __tsan_mutex_pre_lock(mu, flags);
}
void PostLock(const Outermost& outer, void* mu, unsigned flags) {
  if (outer) __tsan_mutex_post_lock(mu, flags, 0);
}
void PreUnlock(const Outermost& outer, void* mu, unsigned flags) {
  if (outer) __tsan_mutex_pre_unlock(mu, flags);
}
void PostUnlock(const Outermost& outer, void* mu, unsigned flags) {
  if (outer) __tsan_mutex_post_unlock(mu, flags);
}
void Release(const Outermost& outer, const void* addr) {
  if (outer) __tsan_release(const_cast<void*>(addr));
}
void Acquire(const Outermost& outer, const void* addr) {
  if (outer) __tsan_acquire(const_cast<void*>(addr));
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// ~Mutex is not wrapped: a destroy annotation would "write" the mutex, and
// gRPC frees its mutexes after synchronizing through atomics in its own
// uninstrumented code, which TSan cannot see. TSan drops a heap mutex's state
// when its memory is freed.

void Mutex::Lock() {
  Outermost o;
  PreLock(o, this, 0);
  REAL(void (*)(Mutex*), "_ZN4absl@5Mutex4LockEv", this);
  PostLock(o, this, 0);
}

void Mutex::ReaderLock() {
  Outermost o;
  PreLock(o, this, __tsan_mutex_read_lock);
  REAL(void (*)(Mutex*), "_ZN4absl@5Mutex10ReaderLockEv", this);
  PostLock(o, this, __tsan_mutex_read_lock);
}

bool Mutex::TryLock() {
  Outermost o;
  PreLock(o, this, __tsan_mutex_try_lock);
  const bool ok = REAL(bool (*)(Mutex*), "_ZN4absl@5Mutex7TryLockEv", this);
  PostLock(o, this,
           __tsan_mutex_try_lock | (ok ? 0 : __tsan_mutex_try_lock_failed));
  return ok;
}

bool Mutex::ReaderTryLock() {
  Outermost o;
  PreLock(o, this, __tsan_mutex_try_read_lock);
  const bool ok =
      REAL(bool (*)(Mutex*), "_ZN4absl@5Mutex13ReaderTryLockEv", this);
  PostLock(o, this,
           ok ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed);
  return ok;
}

void Mutex::Unlock() {
  Outermost o;
  PreUnlock(o, this, 0);
  REAL(void (*)(Mutex*), "_ZN4absl@5Mutex6UnlockEv", this);
  PostUnlock(o, this, 0);
}

void Mutex::ReaderUnlock() {
  Outermost o;
  PreUnlock(o, this, __tsan_mutex_read_lock);
  REAL(void (*)(Mutex*), "_ZN4absl@5Mutex12ReaderUnlockEv", this);
  PostUnlock(o, this, __tsan_mutex_read_lock);
}

// LockWhen*: the condition is evaluated inside the lock operation, where TSan
// ignores memory accesses (between pre_lock and post_lock).
void Mutex::LockWhen(const Condition& cond) {
  Outermost o;
  PreLock(o, this, 0);
  REAL(void (*)(Mutex*, const Condition&),
       "_ZN4absl@5Mutex8LockWhenERKNS0_9ConditionE", this, cond);
  PostLock(o, this, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  Outermost o;
  PreLock(o, this, 0);
  const bool ok = REAL(
      bool (*)(Mutex*, const Condition&, Duration),
      "_ZN4absl@5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
      this, cond, timeout);
  PostLock(o, this, 0);  // held on return either way
  return ok;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  Outermost o;
  PreLock(o, this, 0);
  const bool ok =
      REAL(bool (*)(Mutex*, const Condition&, Time),
           "_ZN4absl@5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
           this, cond, deadline);
  PostLock(o, this, 0);
  return ok;
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  Outermost o;
  PreLock(o, this, __tsan_mutex_read_lock);
  REAL(void (*)(Mutex*, const Condition&),
       "_ZN4absl@5Mutex14ReaderLockWhenERKNS0_9ConditionE", this, cond);
  PostLock(o, this, __tsan_mutex_read_lock);
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  Outermost o;
  PreLock(o, this, __tsan_mutex_read_lock);
  const bool ok = REAL(bool (*)(Mutex*, const Condition&, Duration),
                       "_ZN4absl@5Mutex25ReaderLockWhenWithTimeoutERKNS0_"
                       "9ConditionENS0_8DurationE",
                       this, cond, timeout);
  PostLock(o, this, __tsan_mutex_read_lock);
  return ok;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  Outermost o;
  PreLock(o, this, __tsan_mutex_read_lock);
  const bool ok = REAL(bool (*)(Mutex*, const Condition&, Time),
                       "_ZN4absl@5Mutex26ReaderLockWhenWithDeadlineERKNS0_"
                       "9ConditionENS0_4TimeE",
                       this, cond, deadline);
  PostLock(o, this, __tsan_mutex_read_lock);
  return ok;
}

void Mutex::Await(const Condition& cond) {
  Outermost o;
  AcquiringCondition ac{&cond, this};
  const Condition acquiring(&EvalAcquiring, &ac);
  BeforeWait(o, this);
  REAL(void (*)(Mutex*, const Condition&),
       "_ZN4absl@5Mutex5AwaitERKNS0_9ConditionE", this, o ? acquiring : cond);
  AfterWait(o, this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  Outermost o;
  AcquiringCondition ac{&cond, this};
  const Condition acquiring(&EvalAcquiring, &ac);
  BeforeWait(o, this);
  const bool ok =
      REAL(bool (*)(Mutex*, const Condition&, Duration),
           "_ZN4absl@5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE",
           this, o ? acquiring : cond, timeout);
  AfterWait(o, this);
  return ok;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  Outermost o;
  AcquiringCondition ac{&cond, this};
  const Condition acquiring(&EvalAcquiring, &ac);
  BeforeWait(o, this);
  const bool ok =
      REAL(bool (*)(Mutex*, const Condition&, Time),
           "_ZN4absl@5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE",
           this, o ? acquiring : cond, deadline);
  AfterWait(o, this);
  return ok;
}

void CondVar::Wait(Mutex* mu) {
  Outermost o;
  BeforeWait(o, mu);
  REAL(void (*)(CondVar*, Mutex*), "_ZN4absl@7CondVar4WaitEPNS0_5MutexE", this,
       mu);
  AfterWait(o, mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  Outermost o;
  BeforeWait(o, mu);
  const bool timed_out =
      REAL(bool (*)(CondVar*, Mutex*, Duration),
           "_ZN4absl@7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE",
           this, mu, timeout);
  AfterWait(o, mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  Outermost o;
  BeforeWait(o, mu);
  const bool timed_out =
      REAL(bool (*)(CondVar*, Mutex*, Time),
           "_ZN4absl@7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE", this,
           mu, deadline);
  AfterWait(o, mu);
  return timed_out;
}

// Notification, BlockingCounter, Barrier: what happened before Notify /
// DecrementCount / Block happens before the waiter returns.
void Notification::Notify() {
  Outermost o;
  Release(o, this);
  REAL(void (*)(Notification*), "_ZN4absl@12Notification6NotifyEv", this);
}

void Notification::WaitForNotification() const {
  Outermost o;
  REAL(void (*)(const Notification*),
       "_ZNK4absl@12Notification19WaitForNotificationEv", this);
  Acquire(o, this);
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  Outermost o;
  const bool notified = REAL(
      bool (*)(const Notification*, Duration),
      "_ZNK4absl@12Notification30WaitForNotificationWithTimeoutENS0_8DurationE",
      this, timeout);
  if (notified) Acquire(o, this);
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  Outermost o;
  const bool notified = REAL(
      bool (*)(const Notification*, Time),
      "_ZNK4absl@12Notification31WaitForNotificationWithDeadlineENS0_4TimeE",
      this, deadline);
  if (notified) Acquire(o, this);
  return notified;
}

bool BlockingCounter::DecrementCount() {
  Outermost o;
  Release(o, this);
  return REAL(bool (*)(BlockingCounter*),
              "_ZN4absl@15BlockingCounter14DecrementCountEv", this);
}

void BlockingCounter::Wait() {
  Outermost o;
  REAL(void (*)(BlockingCounter*), "_ZN4absl@15BlockingCounter4WaitEv", this);
  Acquire(o, this);
}

bool Barrier::Block() {
  Outermost o;
  Release(o, this);
  const bool last = REAL(bool (*)(Barrier*), "_ZN4absl@7Barrier5BlockEv", this);
  Acquire(o, this);
  return last;
}

ABSL_NAMESPACE_END
}  // namespace absl
