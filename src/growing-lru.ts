// Bounds meant for the worst case, which should cost nothing until they are used. lru-cache
// allocates its whole `max` up front (about 28 bytes an entry, 44 with TTLs: 2.8 MB for a
// bound of 100,000, in every sidecar, idle or not); with `maxSize` and a size of 1 per entry
// the bound is the same and the storage grows as it fills (lru-cache's README, "Storage Bounds
// Safety"). For the maps that hold a few hundred entries on a normal day and must still be
// bounded against a flood; the introspection cache itself keeps `max`, its capacity being what
// it is for.
import { LRUCache } from 'lru-cache';

export type GrowingLruOptions<K extends {}, V extends {}> = Omit<LRUCache.Options<K, V, unknown>, 'max' | 'maxSize' | 'sizeCalculation'>;

export function growingLru<K extends {}, V extends {}>(max: number, options: GrowingLruOptions<K, V> = {}): LRUCache<K, V> {
  return new LRUCache<K, V>({ ...options, maxSize: max, sizeCalculation: () => 1 });
}
