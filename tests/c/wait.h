/* Waiting in the C tests: a sleep, and a bounded wait for a counter that a
 * callback thread raises under `lock`. Needs _POSIX_C_SOURCE 200809L. */
#ifndef LIBREGISTRY_TEST_WAIT_H
#define LIBREGISTRY_TEST_WAIT_H

#include <pthread.h>
#include <time.h>

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Waits up to 5 s for *counter to reach want; 1 if it did. */
static int wait_counter(pthread_mutex_t *lock, int *counter, int want) {
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(lock);
    int now = *counter;
    pthread_mutex_unlock(lock);
    if (now >= want) return 1;
    sleep_ms(10);
  }
  return 0;
}

#endif
