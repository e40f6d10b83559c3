package driver

// fifo is a growable ring. Its callers bound its length (QueueLimit), so it
// never grows past that; after warm-up it stops allocating.
type fifo[T any] struct {
	buf  []T
	head int
	n    int
}

func (f *fifo[T]) Len() int { return f.n }

func (f *fifo[T]) at(i int) *T { return &f.buf[(f.head+i)%len(f.buf)] }

func (f *fifo[T]) PushBack(v T) {
	if f.n == len(f.buf) {
		grown := make([]T, max(8, 2*len(f.buf)))
		for i := range f.n {
			grown[i] = *f.at(i)
		}
		f.buf, f.head = grown, 0
	}
	*f.at(f.n) = v
	f.n++
}

// Front returns the oldest element; the fifo must not be empty.
func (f *fifo[T]) Front() *T { return f.at(0) }

func (f *fifo[T]) PopFront() T {
	var zero T
	p := f.at(0)
	v := *p
	*p = zero
	f.head = (f.head + 1) % len(f.buf)
	f.n--
	return v
}
